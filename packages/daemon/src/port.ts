/**
 * What the API routes need from the engine: the daemon's port (EnginePort). `engine-port.ts`
 * implements it over @berth/core's Engine as a thin mapper; tests may implement it over a
 * fake. Every method throws typed @berth/core errors (NotFound, Conflict, NotModified, …),
 * which http-errors.ts maps to statuses. ("Backend" in berth means a runtime backend only.)
 */
import type { AttachOptions, AttachStreams, ContainerConfig, ContainerExplain, ContainerLogOptions, ContainerRecord, DockerFilters, HostConfig, LogMessage, PluginInfo, PruneReport, WaitResult } from '@berth/core';
import type { Duplex } from 'node:stream';
import type { ImageService } from '@berth/image-store';
import type { EndpointRequest, NetworkCreateRequest, NetworkResource } from '@berth/plugin-network-cni';
import type { VolumeService } from '@berth/plugin-volumes';

export interface CreateContainerRequest {
  /** Without the leading slash; undefined → generated. */
  name?: string;
  config: ContainerConfig;
  hostConfig: HostConfig;
  networkingConfig?: { EndpointsConfig?: Record<string, unknown> } | null;
  platform?: string;
}

export interface RootfsLease {
  readonly path: string;
  /** With `volumes`: the host path of each volume mounted for the request, by its destination. */
  readonly volumes?: ReadonlyMap<string, string>;
  release(): Promise<void>;
}

export interface ContainerPort {
  create(req: CreateContainerRequest): Promise<{ id: string; warnings: string[] }>;
  /** Resolve by full ID, unique ID prefix or name (with or without '/'); NotFound "No such container: x". */
  inspect(idOrName: string): Promise<ContainerRecord>;
  /**
   * Newest first; with `keep`, only the records it accepts (tested before any copy is made);
   * with `view`, what it makes of each live record (synchronously) instead of a copy.
   */
  list<T = ContainerRecord>(keep?: (c: Readonly<ContainerRecord>) => boolean, view?: (c: Readonly<ContainerRecord>) => T): Promise<T[]>;
  start(idOrName: string, opts: { checkpoint?: string; checkpointDir?: string; hostConfig?: HostConfig }): Promise<void>;
  stop(idOrName: string, opts: { timeout?: number; signal?: string }): Promise<void>;
  restart(idOrName: string, opts: { timeout?: number; signal?: string }): Promise<void>;
  kill(idOrName: string, signal?: string): Promise<void>;
  wait(idOrName: string, condition: 'not-running' | 'next-exit' | 'removed', signal: AbortSignal): Promise<WaitResult>;
  remove(idOrName: string, opts: { force: boolean; volumes: boolean; link: boolean }): Promise<void>;
  rename?(idOrName: string, newName: string): Promise<void>;
  pause?(idOrName: string): Promise<void>;
  unpause?(idOrName: string): Promise<void>;
  resize?(idOrName: string, size: { height: number; width: number }): Promise<void>;
  logs?(idOrName: string, opts: ContainerLogOptions): AsyncIterable<LogMessage>;
  /** Replay the log and/or connect the container's stdio to `io`; resolves when the session ends (exit, detach or disconnect). */
  attach?(idOrName: string, opts: AttachOptions, io: AttachStreams, signal: AbortSignal): Promise<void>;
  top?(idOrName: string, psArgs: string): Promise<{ Titles: string[]; Processes: string[][] }>;
  update?(idOrName: string, resources: HostConfig): Promise<{ warnings: string[] }>;
  /**
   * Sizes of the container's writable layer and whole root filesystem (ps -s, inspect ?size=1).
   * Absent when the engine has no image store: the routes then leave the fields out.
   */
  sizes?(idOrName: string): Promise<{ SizeRw: number; SizeRootFs: number }>;
  /** Filesystem changes against the image (GET /containers/{id}/changes). */
  changes?(idOrName: string): Promise<Array<{ Path: string; Kind: 0 | 1 | 2 }>>;
  /**
   * The container's root filesystem for one request (archive, export), mounted for its
   * duration when the container does not run; `release` gives the mount back (the last holder
   * unmounts). With `volumes` (docker cp, as dockerd's openContainerFS) its volumes are
   * mounted through their drivers too and given back with it. Without it the routes use a set
   * BaseFS as it is.
   */
  mountRootfs?(idOrName: string, opts?: { volumes?: boolean }): Promise<RootfsLease>;
  prune?(filters: DockerFilters): Promise<PruneReport>;
  /** What the container's last start did, tap by tap (engine.explain; GET /berth/v1/containers/{id}/explain). */
  explain?(idOrName: string): Promise<ContainerExplain>;
}

export interface ExecCreateRequest {
  AttachStdin?: boolean;
  AttachStdout?: boolean;
  AttachStderr?: boolean;
  DetachKeys?: string;
  Tty?: boolean;
  ConsoleSize?: [number, number] | null;
  Env?: string[] | null;
  Cmd: string[];
  Privileged?: boolean;
  User?: string;
  WorkingDir?: string;
}

export interface ExecInspect {
  ID: string;
  Running: boolean;
  ExitCode: number | null;
  ProcessConfig: { tty: boolean; entrypoint: string; arguments: string[]; privileged: boolean; user: string };
  OpenStdin: boolean;
  OpenStderr: boolean;
  OpenStdout: boolean;
  CanRemove: boolean;
  ContainerID: string;
  DetachKeys: string;
  Pid: number;
}

export interface ExecPort {
  create(container: string, req: ExecCreateRequest): Promise<{ id: string }>;
  start(execId: string, opts: { detach: boolean; tty: boolean }, io: AttachStreams, signal: AbortSignal): Promise<void>;
  resize(execId: string, size: { height: number; width: number }): Promise<void>;
  inspect(execId: string): Promise<ExecInspect>;
}

/** Docker's events message (swagger EventMessage). */
export interface EventMessage {
  Type: string;
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  scope: 'local' | 'swarm';
  time: number;
  /** Exact (a number loses precision beyond 2^53); written as a JSON integer. */
  timeNano: bigint;
  /** Deprecated fields still sent by dockerd for containers. */
  status?: string;
  id?: string;
  from?: string;
}

export interface EventSource {
  /** Past events (from the in-memory ring) with timeNano ≥ since, then live ones until unsubscribed. */
  subscribe(sinceNano: bigint | null, listener: (ev: EventMessage) => void): { past: EventMessage[]; unsubscribe(): void };
  /** Subscriptions open now (/info NEventsListener). */
  listeners?(): number;
}

export interface ImageLookup {
  /** Number of images the store holds (for /info). */
  count(): Promise<number>;
  /** The image ID a reference resolves to, or null (for the ancestor filter). */
  resolve(ref: string): Promise<string | null>;
}

export interface RuntimeInfo {
  path: string;
  runtimeArgs?: string[];
}

export interface DaemonFacts {
  /** Stable daemon ID (persisted under the data root). */
  id: string;
  dataRoot: string;
  execRoot: string;
  experimental: boolean;
  liveRestore: boolean;
  defaultRuntime: string;
  runtimes: Record<string, RuntimeInfo>;
  securityOptions: string[];
  storageDriver: string;
  loggingDriver: string;
  /** The engine's (EngineConfig.cgroupDriver). */
  cgroupDriver: string;
  cgroupVersion: '1' | '2';
  /**
   * Every plugin of the build with its status, a skipped one with its reason (/info BerthPlugins),
   * version, config (secrets redacted) and the hooks it taps (GET /berth/v1/plugins).
   */
  plugins: readonly PluginInfo[];
  debug: boolean;
  labels: string[];
  /** The --init binary's version for /info InitCommit.ID (init.ts initVersion); unset: no init binary. */
  initCommit?: string;
}

/** A container's checkpoints (engine.checkpoints; dockerd's experimental checkpoint API). `dir`: the client's CheckpointDir. */
export interface CheckpointPort {
  create(idOrName: string, opts: { name: string; dir?: string; exit: boolean }): Promise<void>;
  list(idOrName: string, dir?: string): Promise<Array<{ Name: string }>>;
  remove(idOrName: string, name: string, dir?: string): Promise<void>;
}

/**
 * Docker's networks (the network-cni plugin's service, engine-port.ts): the /networks routes.
 * Bodies are Docker's (NetworkCreateRequest, NetworkResource, EndpointSettings).
 */
export interface NetworkPort {
  create(req: NetworkCreateRequest): Promise<{ Id: string; Warning: string }>;
  list(filters: DockerFilters): Promise<NetworkResource[]>;
  inspect(ref: string): Promise<NetworkResource>;
  remove(ref: string): Promise<void>;
  prune(filters: DockerFilters): Promise<{ NetworksDeleted: string[] }>;
  /** Connect a container (a running one gets the interface at once); `endpoint` = EndpointConfig. */
  connect(ref: string, container: string, endpoint: EndpointRequest | undefined): Promise<void>;
  disconnect(ref: string, container: string, force: boolean): Promise<void>;
}

/** Docker's volumes (the volumes plugin's service, engine-port.ts): the /volumes routes and /system/df's volumes. */
export type VolumePort = Pick<VolumeService, 'create' | 'list' | 'inspect' | 'remove' | 'prune' | 'usage' | 'leaseMounts'>;

export interface EnginePort {
  facts(): DaemonFacts;
  /** Present when the volumes plugin is loaded (@berth/plugin-volumes): the /volumes routes. */
  volumes?: VolumePort;
  containers: ContainerPort;
  /** Present when a networking plugin serves Docker's networks (@berth/plugin-network-cni): the /networks routes. */
  networks?: NetworkPort;
  /** Present when the engine stores checkpoints (@berth/plugin-checkpoint): the checkpoint routes. */
  checkpoints?: CheckpointPort;
  exec?: ExecPort;
  events?: EventSource;
  images?: ImageLookup;
  /** The image-store plugin's service, when loaded (the /images routes). */
  imageService?(): ImageService | undefined;
  /** What the engine could not load at start and the operator should know (/info Warnings). */
  engineWarnings?(): string[];
}

/** Socket-ish duplex used by hijacked routes. */
export type Hijacked = Duplex;
