/**
 * Injection tokens for the replaceable parts of an engine. A token shares its name with
 * its interface (vscode's createDecorator convention): `IRuntime` is both the token and
 * the type. Register providers in the engine's own tsyringe child container; never as
 * process-wide singletons.
 */
import type { InjectionToken } from 'tsyringe';
import type { RuntimeBackend } from './runtime.js';
import type { StateStore } from './store.js';
import type { ImageStore } from './image.js';
import type { Logger } from './logger.js';
import type { Clock } from './clock.js';
import type { EventBus } from './events.js';
import type { Host } from './host.js';

export type IRuntime = RuntimeBackend;
export const IRuntime: InjectionToken<IRuntime> = Symbol('IRuntime');

export type IStateStore = StateStore;
export const IStateStore: InjectionToken<IStateStore> = Symbol('IStateStore');

export type IImageStore = ImageStore;
export const IImageStore: InjectionToken<IImageStore> = Symbol('IImageStore');

export type ILogger = Logger;
export const ILogger: InjectionToken<ILogger> = Symbol('ILogger');

export type IClock = Clock;
export const IClock: InjectionToken<IClock> = Symbol('IClock');

export type IEventBus = EventBus;
export const IEventBus: InjectionToken<IEventBus> = Symbol('IEventBus');

export type IHost = Host;
export const IHost: InjectionToken<IHost> = Symbol('IHost');

/** The engine's configuration as plugins see it. */
export interface EngineConfig {
  readonly dataRoot: string;
  readonly execRoot: string;
  readonly experimental: boolean;
  /** Runtime name used when HostConfig.Runtime is empty (dockerd's --default-runtime). */
  readonly defaultRuntime: string;
  /**
   * Create containers without pivot_root (dockerd's NoPivotRoot: berthd sets it when it runs
   * with DOCKER_RAMDISK); it reaches the runtime as RuntimeCreateOptions.noPivotRoot.
   */
  readonly noPivotRoot: boolean;
  /** Keep containers running when the engine stops (dockerd's --live-restore). */
  readonly liveRestore: boolean;
  /** The cgroup driver the spec builder writes cgroup paths for (EngineOptions.spec.cgroupDriver; /info CgroupDriver). */
  readonly cgroupDriver: 'cgroupfs' | 'systemd';
  /** Per-plugin config from the build (plugin name → config object). */
  readonly plugins: Readonly<Record<string, unknown>>;
}
export type IEngineConfig = EngineConfig;
export const IEngineConfig: InjectionToken<IEngineConfig> = Symbol('IEngineConfig');
