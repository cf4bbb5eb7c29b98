export * from './registry.js';
export * from './log-pump.js';
export * from './runtime-cli.js';
export * from './backend.js';
export * from './timings.js';
export { fastStartRunc, mountsUnder } from './files.js';
export { attachSocket } from './attach.js';
export * from './plugin.js';
