import { fileURLToPath } from 'node:url';
import { defineConfig, type ViteUserConfig } from 'vitest/config';

const setup = fileURLToPath(new URL('./vitest.setup.ts', import.meta.url));

/** Shared vitest settings: every package resolves sibling packages to their sources. */
export function berthVitestConfig(overrides: ViteUserConfig['test'] = {}): ViteUserConfig {
  return defineConfig({
    resolve: { conditions: ['@berth/source'] },
    ssr: { resolve: { conditions: ['@berth/source'] } },
    test: {
      include: ['test/**/*.test.ts'],
      setupFiles: [setup],
      testTimeout: 20_000,
      hookTimeout: 30_000,
      ...overrides,
    },
  });
}
