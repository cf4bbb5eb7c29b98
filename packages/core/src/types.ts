/**
 * The container model, shaped like the Docker Engine API's types
 * (the Engine API's swagger.yaml — scripts/fetch-specs.sh: ContainerConfig, HostConfig,
 * ContainerState, NetworkSettings). Field names are Docker's, so a record can be
 * answered by the API as it is.
 */
import type { IdMappings } from './idmap.js';

export interface HealthConfig {
  Test?: string[] | null;
  Interval?: number;
  Timeout?: number;
  Retries?: number;
  StartPeriod?: number;
  StartInterval?: number;
}

export interface ContainerConfig {
  Hostname?: string;
  Domainname?: string;
  User?: string;
  AttachStdin?: boolean;
  AttachStdout?: boolean;
  AttachStderr?: boolean;
  ExposedPorts?: Record<string, Record<string, never>> | null;
  Tty?: boolean;
  OpenStdin?: boolean;
  StdinOnce?: boolean;
  Env?: string[] | null;
  Cmd?: string[] | null;
  Healthcheck?: HealthConfig | null;
  ArgsEscaped?: boolean | null;
  Image?: string;
  Volumes?: Record<string, Record<string, never>> | null;
  WorkingDir?: string;
  Entrypoint?: string[] | null;
  NetworkDisabled?: boolean | null;
  MacAddress?: string | null;
  OnBuild?: string[] | null;
  Labels?: Record<string, string> | null;
  StopSignal?: string | null;
  StopTimeout?: number | null;
  Shell?: string[] | null;
}

export interface RestartPolicy {
  Name?: '' | 'no' | 'always' | 'unless-stopped' | 'on-failure';
  MaximumRetryCount?: number;
}

export interface PortBinding {
  HostIp?: string;
  HostPort?: string;
}

export interface DeviceMapping {
  PathOnHost: string;
  PathInContainer: string;
  CgroupPermissions?: string;
}

export interface Ulimit {
  Name: string;
  Soft: number;
  Hard: number;
}

export interface Mount {
  Target: string;
  Source?: string;
  Type: 'bind' | 'volume' | 'tmpfs' | 'npipe' | 'cluster' | 'image';
  ReadOnly?: boolean;
  Consistency?: string;
  BindOptions?: {
    Propagation?: 'private' | 'rprivate' | 'shared' | 'rshared' | 'slave' | 'rslave';
    NonRecursive?: boolean;
    CreateMountpoint?: boolean;
    ReadOnlyNonRecursive?: boolean;
    ReadOnlyForceRecursive?: boolean;
  } | null;
  VolumeOptions?: {
    NoCopy?: boolean;
    Labels?: Record<string, string>;
    DriverConfig?: { Name?: string; Options?: Record<string, string> };
    Subpath?: string;
  } | null;
  TmpfsOptions?: { SizeBytes?: number; Mode?: number; Options?: string[][] } | null;
}

export interface LogConfig {
  Type?: string;
  Config?: Record<string, string>;
}

export interface HostConfig {
  // Resources
  CpuShares?: number;
  Memory?: number;
  CgroupParent?: string;
  BlkioWeight?: number;
  BlkioWeightDevice?: Array<{ Path: string; Weight: number }> | null;
  BlkioDeviceReadBps?: Array<{ Path: string; Rate: number }> | null;
  BlkioDeviceWriteBps?: Array<{ Path: string; Rate: number }> | null;
  BlkioDeviceReadIOps?: Array<{ Path: string; Rate: number }> | null;
  BlkioDeviceWriteIOps?: Array<{ Path: string; Rate: number }> | null;
  CpuPeriod?: number;
  CpuQuota?: number;
  CpuRealtimePeriod?: number;
  CpuRealtimeRuntime?: number;
  CpusetCpus?: string;
  CpusetMems?: string;
  Devices?: DeviceMapping[] | null;
  DeviceCgroupRules?: string[] | null;
  DeviceRequests?: unknown[] | null;
  KernelMemoryTCP?: number;
  MemoryReservation?: number;
  MemorySwap?: number;
  MemorySwappiness?: number | null;
  NanoCpus?: number;
  OomKillDisable?: boolean | null;
  Init?: boolean | null;
  PidsLimit?: number | null;
  Ulimits?: Ulimit[] | null;
  CpuCount?: number;
  CpuPercent?: number;
  IOMaximumIOps?: number;
  IOMaximumBandwidth?: number;
  // Host
  Binds?: string[] | null;
  ContainerIDFile?: string;
  LogConfig?: LogConfig;
  NetworkMode?: string;
  PortBindings?: Record<string, PortBinding[] | null> | null;
  RestartPolicy?: RestartPolicy;
  AutoRemove?: boolean;
  VolumeDriver?: string;
  VolumesFrom?: string[] | null;
  Mounts?: Mount[] | null;
  ConsoleSize?: [number, number] | null;
  Annotations?: Record<string, string> | null;
  CapAdd?: string[] | null;
  CapDrop?: string[] | null;
  CgroupnsMode?: 'private' | 'host' | '';
  Dns?: string[] | null;
  DnsOptions?: string[] | null;
  DnsSearch?: string[] | null;
  ExtraHosts?: string[] | null;
  GroupAdd?: string[] | null;
  IpcMode?: string;
  Cgroup?: string;
  Links?: string[] | null;
  OomScoreAdj?: number;
  PidMode?: string;
  Privileged?: boolean;
  PublishAllPorts?: boolean;
  ReadonlyRootfs?: boolean;
  SecurityOpt?: string[] | null;
  StorageOpt?: Record<string, string> | null;
  Tmpfs?: Record<string, string> | null;
  UTSMode?: string;
  UsernsMode?: string;
  ShmSize?: number;
  Sysctls?: Record<string, string> | null;
  Runtime?: string;
  Isolation?: string;
  MaskedPaths?: string[] | null;
  ReadonlyPaths?: string[] | null;
}

export type ContainerStatus =
  | 'created'
  | 'running'
  | 'paused'
  | 'restarting'
  | 'removing'
  | 'exited'
  | 'dead';

export interface HealthState {
  Status: 'none' | 'starting' | 'healthy' | 'unhealthy';
  FailingStreak: number;
  Log: Array<{ Start: string; End: string; ExitCode: number; Output: string }>;
}

export interface ContainerState {
  Status: ContainerStatus;
  Running: boolean;
  Paused: boolean;
  Restarting: boolean;
  OOMKilled: boolean;
  Dead: boolean;
  Pid: number;
  ExitCode: number;
  Error: string;
  /** RFC 3339 with nanoseconds; Docker's zero time "0001-01-01T00:00:00Z" when never. */
  StartedAt: string;
  FinishedAt: string;
  Health?: HealthState;
}

export interface EndpointSettings {
  IPAMConfig?: unknown;
  Links?: string[] | null;
  Aliases?: string[] | null;
  MacAddress?: string;
  NetworkID?: string;
  EndpointID?: string;
  Gateway?: string;
  IPAddress?: string;
  IPPrefixLen?: number;
  IPv6Gateway?: string;
  GlobalIPv6Address?: string;
  GlobalIPv6PrefixLen?: number;
  DriverOpts?: Record<string, string> | null;
  DNSNames?: string[] | null;
}

export interface NetworkSettings {
  Bridge?: string;
  SandboxID: string;
  SandboxKey: string;
  Ports: Record<string, PortBinding[] | null>;
  HairpinMode?: boolean;
  LinkLocalIPv6Address?: string;
  LinkLocalIPv6PrefixLen?: number;
  SecondaryIPAddresses?: unknown;
  SecondaryIPv6Addresses?: unknown;
  EndpointID?: string;
  Gateway?: string;
  GlobalIPv6Address?: string;
  GlobalIPv6PrefixLen?: number;
  IPAddress?: string;
  IPPrefixLen?: number;
  IPv6Gateway?: string;
  MacAddress?: string;
  Networks: Record<string, EndpointSettings>;
}

export interface MountPoint {
  Type: string;
  Name?: string;
  Source: string;
  Destination: string;
  Driver?: string;
  Mode: string;
  RW: boolean;
  Propagation: string;
}

/**
 * What berth persists per container (config.v2.json, HostConfig in hostconfig.json).
 * Mirrors dockerd's `container.Container` as serialized, with the fields the API's
 * ContainerInspectResponse needs.
 */
export interface ContainerRecord {
  ID: string;
  /** Without the leading slash internally? No: Docker stores "/name"; so do we. */
  Name: string;
  Created: string;
  Path: string;
  Args: string[];
  Config: ContainerConfig;
  HostConfig: HostConfig;
  State: ContainerState;
  /** Image ID (sha256:…) or '' when the container runs on a plain rootfs. */
  Image: string;
  NetworkSettings: NetworkSettings;
  ResolvConfPath: string;
  HostnamePath: string;
  HostsPath: string;
  LogPath: string;
  RestartCount: number;
  Driver: string;
  Platform: string;
  MountLabel: string;
  ProcessLabel: string;
  AppArmorProfile: string;
  ExecIDs: string[] | null;
  Mounts: MountPoint[];
  /** Root filesystem path on the host (set by beforeMount taps, or by create for a plain rootfs). */
  BaseFS?: string;
  /**
   * Which runtime backend runs the container (set by each start's runtimeCreate step; live
   * restore routes to it). Inspect shows it as a berth field beside dockerd's.
   */
  RuntimeBackend?: string;
  /**
   * The OCI runtime the last start ran it with: HostConfig.Runtime unless a runtimeCreate tap
   * routed it elsewhere. Inspect shows it as a berth field beside dockerd's.
   */
  RuntimeName?: string;
  /** True while a removal is in progress (dockerd's RemovalInProgress). */
  RemovalInProgress?: boolean;
  /** Set by an explicit stop/kill, so restart policies do not restart it (dockerd's HasBeenManuallyStopped). */
  HasBeenManuallyStopped?: boolean;
  HasBeenStartedBefore?: boolean;
  /**
   * The user-namespace ID mappings of the last start (from its spec's linux.uid/gidMappings;
   * absent without a user namespace), kept after exit: docker cp, export and commit translate
   * file owners through them.
   */
  IdMappings?: IdMappings;
}

/** Docker's zero time, as the API prints it for StartedAt/FinishedAt never set. */
export const ZERO_TIME = '0001-01-01T00:00:00Z';
