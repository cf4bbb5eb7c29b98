import { volumesPlugin } from './plugin.js';

export * from './plugin.js';
export * from './service.js';
export * from './types.js';
export * from './local.js';
export * from './remote.js';
export * from './copy-up.js';
export default volumesPlugin;
