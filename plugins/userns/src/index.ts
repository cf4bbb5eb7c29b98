import { usernsPlugin } from './plugin.js';

export * from './subid.js';
export * from './auto.js';
export * from './ownership.js';
export * from './idmap.js';
export * from './plugin.js';
export default usernsPlugin;
