import { defineConfig } from 'vitest/config';

/**
 * Root config: one vitest run over every package. Each project is named after its
 * package.json name: `--project '!@berth/e2e'` runs the unit tests of packages and plugins,
 * `--project @berth/e2e` the end-to-end tests (real runc, real clients, as root).
 */
export default defineConfig({
  test: {
    projects: ['packages/*/vitest.config.ts', 'plugins/*/vitest.config.ts', 'test/e2e/vitest.config.ts'],
  },
});
