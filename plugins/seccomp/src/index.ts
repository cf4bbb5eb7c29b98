import { seccompPlugin } from './plugin.js';

export * from './profile.js';
export * from './plugin.js';
export default seccompPlugin;
