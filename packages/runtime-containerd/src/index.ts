export * from './plugin.js';
export * from './backend.js';
export { ContainerdClient, type ContainerdClientOptions } from './client.js';
export * from './proto.js';
export { LABEL, labelsOf, stdioOf, type TaskLabels } from './labels.js';
export { FifoReader, LogSink, MAX_LOG_LINE, makeFifos } from './stdio.js';
