export * from './fake-runtime.js';
export * from './engine.js';
export * from './fakes.js';
