// Unit tests of the bench's own helpers (statistics, profile summary, chart, HTTP pool), the
// project `@berth/bench` of the root vitest config (so the suite and CI run them):
//   pnpm -s vitest run --project @berth/bench
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: { name: '@berth/bench', root: fileURLToPath(new URL('.', import.meta.url)), include: ['test/**/*.test.mjs'], testTimeout: 20_000 },
});
