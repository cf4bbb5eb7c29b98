import { checkpointPlugin } from './plugin.js';

export * from './plugin.js';
export * from './store.js';
export default checkpointPlugin;
