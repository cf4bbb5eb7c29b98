export * from './errors.js';
export * from './types.js';
export * from './oci.js';
export * from './runtime.js';
export * from './tokens.js';
export * from './logs/index.js';
