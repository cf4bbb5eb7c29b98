/** berthd's resolved configuration: dockerd's flag names and daemon.json keys, after merging. */
import type { LogLevel } from '@berth/core';
import type { RuntimeInfo } from './port.js';
import type { ConnectionLimits } from './connections.js';

/** dockerd's --log-level values: the engine's levels plus `fatal` (logged as `error`: berth has no fatal entries). */
export type DaemonLogLevel = LogLevel | 'fatal';

const DAEMON_LOG_LEVELS: readonly string[] = ['debug', 'info', 'warn', 'error', 'fatal'];

export function isDaemonLogLevel(v: string): v is DaemonLogLevel {
  return DAEMON_LOG_LEVELS.includes(v);
}

export interface DaemonConfig {
  hosts: string[];
  dataRoot: string;
  execRoot: string;
  pidfile: string;
  group: string;
  groupExplicit: boolean;
  experimental: boolean;
  liveRestore: boolean;
  logLevel: DaemonLogLevel;
  debug: boolean;
  defaultRuntime: string;
  /** Runtimes by name: built-in runc plus --add-runtime / daemon.json "runtimes". */
  runtimes: Record<string, RuntimeInfo>;
  tls: { verify: boolean; ca?: string; cert?: string; key?: string };
  labels: string[];
  /** berth-only: a directory whose subdirectories are root filesystems usable as images by name (tests, no image store). */
  rootfsDir?: string;
  shutdownTimeout: number;
  /** --userns-remap / "userns-remap": 'default' or USER[:GROUP] (the userns plugin); unset: no remap. */
  usernsRemap?: string;
  /** --init / "init": containers whose HostConfig.Init is unset run under docker-init. */
  init: boolean;
  /** --init-path / "init-path": the docker-init binary (default: tini-static, else tini; init.ts). */
  initPath?: string;
  /** berth-only slow-client bounds of the API listeners (connections.ts); unset: the defaults. */
  connections?: Partial<ConnectionLimits>;
}

export const DEFAULT_SOCKET = 'unix:///run/berth/berth.sock';

export function defaultConfig(): DaemonConfig {
  return {
    hosts: [DEFAULT_SOCKET],
    dataRoot: '/var/lib/berth',
    execRoot: '/run/berth',
    pidfile: '/run/berth.pid',
    group: 'docker',
    groupExplicit: false,
    experimental: false,
    liveRestore: false,
    logLevel: 'info',
    debug: false,
    defaultRuntime: 'runc',
    runtimes: { runc: { path: 'runc' } },
    tls: { verify: false },
    labels: [],
    shutdownTimeout: 15,
    init: false,
  };
}
