import { berthVitestConfig } from '../../vitest.shared.js';

// The scaffolder's own tests, and the template's harness test run against berth's sources.
export default berthVitestConfig({ include: ['test/**/*.test.ts', 'template/test/**/*.test.ts'] });
