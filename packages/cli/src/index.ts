export * from './options.js';
export { main as berthdMain } from './berthd.js';
