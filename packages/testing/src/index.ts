export * from './fake-runtime.js';
export * from './engine.js';
export * from './backend-plugin.js';
export * from './fakes.js';
export * from './specs.js';
export * from './doc-blocks.js';
