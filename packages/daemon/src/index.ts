// First: tsyringe (through @berth/core) needs the Reflect metadata API when it is imported, so
// a process whose entry imports @berth/daemon first (berthd's bin, a custom build) has it.
import 'reflect-metadata';
export * from './app.js';
export * from './port.js';
export * from './daemon.js';
export * from './http-errors.js';
export * from './http.js';
export * from './inject.js';
export * from './router.js';
export * from './routes/index.js';
export * from './version.js';
export * from './config.js';
export * from './builtins.js';
export * from './build-file.js';
export * from './options.js';
export * from './berthd-main.js';
export * from './engine-port.js';
export * from './main.js';
export * from './top.js';
export * from './format.js';
export * from './validate.js';
export * from './last-guard.js';
export * from './idle-gc.js';
export * from './connections.js';
export * from './request-streams.js';
export * from './hijack-io.js';
export * from './stats.js';
