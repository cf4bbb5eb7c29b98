import { berthVitestConfig } from '../../vitest.shared.js';

// e2e tests drive real runc/conmon and real clients; run files one at a time (2-core CI).
export default berthVitestConfig({ include: ['**/*.e2e.test.ts'], fileParallelism: false, testTimeout: 60_000, globalSetup: ['helpers/global-setup.ts'] });
