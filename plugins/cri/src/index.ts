/** @berth/plugin-cri: the Kubernetes CRI (runtime.v1) server plugin and its mapping helpers. */
export * from './plugin.js';
export * from './mapping.js';
export { PodStore, hostNamespaces, type PodNamespaces, type PodRecord } from './pods.js';
export { pidHolders, pidNamespacePath, unshareSpawner, HOLDER_INITS, type HolderSpawner, type PidHolder, type PidHolders } from './pid-holder.js';
export { PROTO_FILE, LOADER_OPTIONS, loadCriPackage, grpcCode } from './server.js';
export type { ProcessStats } from './runtime-service.js';
export { cniPodNetwork, defaultPodConfList, podConfList, DEFAULT_POD_BRIDGE, DEFAULT_POD_SUBNET, type PodNetwork, type PodNetworkConfig } from './pod-network.js';
export { connectCri, type CriCall, type CriClient } from './client.js';
export { STREAM_PROTOCOLS, statusOf, type StreamRequest, type StreamingServer } from './streaming.js';
export { streamingTlsOf, subjectAltNames, validateStreamingTls, type StreamingTlsConfig, type TlsMaterial } from './streaming-tls.js';
export { PORT_FORWARD_PROTOCOLS, RELAY_SCRIPT, relayDialer, portsOfQuery, type PortConnection, type PortDialer } from './portforward.js';
export { SPDY_PORT_FORWARD_PROTOCOLS, SPDY_STREAM_PROTOCOLS } from './spdy.js';
export { dialSpdy, openSpdyStream, readAll, type SpdyDialed } from './spdy-client.js';
