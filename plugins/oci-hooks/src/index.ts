import { ociHooksPlugin } from './plugin.js';

export * from './hooks-dir.js';
export * from './plugin.js';
export default ociHooksPlugin;
