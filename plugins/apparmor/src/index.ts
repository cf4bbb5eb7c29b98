import { apparmorPlugin } from './plugin.js';

export * from './host.js';
export * from './profile.js';
export * from './plugin.js';
export default apparmorPlugin;
