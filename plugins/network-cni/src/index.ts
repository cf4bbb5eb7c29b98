/**
 * @berth/plugin-network-cni: networking on CNI (issue 15). So far the foundation: the CNI
 * runner (cni.ts) and network namespaces kept as files (netns.ts); the plugin on the
 * `networking`/`releaseNetwork` hooks and Docker's networks come on top.
 */
export * from './cni.js';
export * from './netns.js';
