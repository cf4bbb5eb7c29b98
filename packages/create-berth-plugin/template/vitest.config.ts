// Vitest for a berth plugin: reflect-metadata is loaded before any test file (tsyringe needs it),
// and the decorators are compiled from tsconfig.json's experimentalDecorators (the constructor
// parameters name their tokens with @inject, so no emitted type metadata is needed).
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['./vitest.setup.ts'],
  },
});
