/**
 * @berth/plugin-network-cni: networking on CNI (issue 15) — the plugin (plugin.ts) on the
 * `networking`/`releaseNetwork` hooks, Docker's networks (service.ts over store.ts, ipam.ts,
 * conflist.ts, attach.ts), the CNI runner (cni.ts) and network namespaces kept as files (netns.ts).
 */
export * from './cni.js';
export * from './netns.js';
export * from './ipam.js';
export * from './store.js';
export * from './conflist.js';
export * from './attach.js';
export * from './service.js';
export * from './plugin.js';
