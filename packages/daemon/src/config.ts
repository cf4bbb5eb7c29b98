/** berthd's resolved configuration: dockerd's flag names and daemon.json keys, after merging. */
import { InvalidParameterError, type LogLevel } from '@berth/core';
import type { RuntimeInfo } from './port.js';
import type { ConnectionLimits } from './connections.js';

/** A bad command line, daemon.json or build: berthd says so and exits without starting (125 from the parser). */
export class UsageError extends InvalidParameterError {}

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
  /** --seccomp-profile / "seccomp-profile": the seccomp plugin's default for containers — 'builtin', 'unconfined' or a profile file (absolute); unset: builtin. */
  seccompProfile?: string;
  /** --init / "init": containers whose HostConfig.Init is unset run under docker-init. */
  init: boolean;
  /** --init-path / "init-path": the docker-init binary (default: tini-static, else tini; init.ts). */
  initPath?: string;
  /** berth-only slow-client bounds of the API listeners (connections.ts); unset: the defaults. */
  connections?: Partial<ConnectionLimits>;
  /** daemon.json "plugins" (build-file.ts) plus a custom build's flags: which plugins make the build, and their config. */
  build: PluginBuild;
  /** The default bridge network (the network-cni plugin): --bridge/-b ("none": none), --bip, --fixed-cidr, --mtu, "default-address-pools". */
  network: { bridge?: string; bip?: string; fixedCidr?: string; mtu?: number; defaultAddressPools?: Array<{ base: string; size: number }>; ipMasq?: boolean };
}

/** The build: daemon.json's `plugins` section, parsed (paths absolute). */
export interface PluginBuild {
  /** Directories npm package names are resolved from (their node_modules, then their parents'), before the daemon's working directory. */
  paths: string[];
  /** Third-party plugins: npm package names, or absolute paths of module files. */
  load: string[];
  /** Built-ins turned on (true) or off (false) by name; the others keep their default. */
  builtins: Record<string, boolean>;
  /** The runtime backend plugin's name; the other built-in backends are left out. Unset: runtime-oci. */
  backend?: string;
  /** Per-plugin config (plugin name → keys), what Engine.create's `pluginConfig` gets. */
  config: Record<string, Record<string, unknown>>;
}

export function emptyBuild(): PluginBuild {
  return { paths: [], load: [], builtins: {}, config: {} };
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
    build: emptyBuild(),
    network: {},
  };
}
