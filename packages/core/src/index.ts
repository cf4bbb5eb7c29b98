/**
 * @berth/core's public API. It also re-exports what a plugin needs from tsyringe and tapable
 * (both peer dependencies of this package): a plugin imports `inject`, `injectable`, the DI
 * types and the hook classes from '@berth/core', so it uses the engine's own copies — a
 * second copy of tsyringe would not know the engine's tokens or a plugin's @injectable classes.
 */
export { inject, injectAll, injectable, singleton, type DependencyContainer, type InjectionToken } from 'tsyringe';
export { AsyncSeriesBailHook, AsyncSeriesHook, AsyncSeriesWaterfallHook } from 'tapable';
export * from './errors.js';
export * from './types.js';
export * from './oci.js';
export * from './idmap.js';
export * from './tar-ids.js';
export * from './runtime.js';
export * from './backends.js';
export * from './tokens.js';
export * from './logs/index.js';
export * from './clock.js';
export * from './logger.js';
export * from './events.js';
export * from './ids.js';
export * from './signals.js';
export * from './lock.js';
export * from './state.js';
export * from './store.js';
export * from './atomic-write.js';
export * from './mountinfo.js';
export * from './docker-filters.js';
export * from './image.js';
export * from './host.js';
export * from './provenance.js';
export * from './explain.js';
export * from './hooks.js';
export * from './checkpoint.js';
export * from './plugin.js';
export * from './service.js';
export * from './record-factory.js';
export type { CreateOptions, CreateResult } from './create.js';
export { DEFAULT_STOP_TIMEOUT } from './stop-kill.js';
export type { RemoveOptions } from './remove.js';
export * from './exit-codes.js';
export * from './start-error.js';
export type { StartRun, StartStep } from './start-steps.js';
export * from './wait-registry.js';
export * from './hostconfig-validate.js';
export * from './config-validate.js';
export * from './exec.js';
export * from './health.js';
export * from './links.js';
export * from './engine.js';
export * from './attach.js';
export * from './prune.js';
export * from './spec/index.js';
export { parseSize } from './util.js';
export * from './failpoint.js';
