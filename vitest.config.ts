import { defineConfig } from 'vitest/config';

/**
 * Root config: one vitest run over every package. Each project is named after its
 * package.json name (the bench helpers' tests: `@berth/bench`): `--project '!@berth/e2e'` runs
 * the unit tests of packages, plugins and the bench helpers,
 * `--project @berth/e2e` the end-to-end tests (real runc, real clients, as root).
 */
export default defineConfig({
  test: {
    projects: [
      'packages/*/vitest.config.ts',
      'plugins/*/vitest.config.ts',
      'bench/vitest.config.mjs',
      'test/e2e/vitest.config.ts',
    ],
  },
});
