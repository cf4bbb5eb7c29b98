export * from './time.js';
export * from './jsonfile.js';
export * from './reader.js';
export * from './follow.js';
