export * from './fake-runtime.js';
export * from './engine.js';
export * from './fakes.js';
export * from './specs.js';
