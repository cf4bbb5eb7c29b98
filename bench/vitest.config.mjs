// Unit tests of the bench's own helpers (statistics, profile summary, chart, HTTP pool):
//   npx vitest run --config bench/vitest.config.mjs
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: { root: fileURLToPath(new URL('.', import.meta.url)), include: ['test/**/*.test.mjs'], testTimeout: 20_000 },
});
