import { networkBasicPlugin } from './plugin.js';

export * from './files.js';
export * from './plugin.js';
export default networkBasicPlugin;
