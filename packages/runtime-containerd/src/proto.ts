/**
 * containerd's wire format, as the containerd backend speaks it: berth's own .proto files
 * (proto/containerd/: containerd's message and field names and numbers, berth's comments)
 * loaded with @grpc/proto-loader into gRPC service clients, and the mapping between berth's
 * values and containerd's messages — the OCI spec, process and resources as JSON in an Any
 * under containerd's type URLs, the runc shim's options, timestamps, task statuses and gRPC
 * status codes as berth's typed errors. Nothing here talks to containerd (client.ts does).
 */
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import {
  ConflictError,
  InvalidParameterError,
  NotFoundError,
  NotImplementedError,
  SystemError,
  UnavailableError,
  formatRfc3339Nano,
  type ExitInfo,
  type OciProcess,
  type OciResources,
  type OciSpec,
  type RuntimeStatus,
} from '@berth/core';

/** The .proto files' root (proto/ beside src/ and dist/). */
export const PROTO_DIR = fileURLToPath(new URL('../proto', import.meta.url));
const SERVICE_FILES = ['containerd/tasks.proto', 'containerd/containers.proto', 'containerd/version.proto'];

/**
 * containerd's type URLs for the OCI types it carries as JSON (its typeurl registry: the
 * runtime-spec's Go package, major version 1, the type's name), and the runc shim's options,
 * a protobuf message named by its full name.
 */
export const TYPE_URL = {
  spec: 'types.containerd.io/opencontainers/runtime-spec/1/Spec',
  process: 'types.containerd.io/opencontainers/runtime-spec/1/Process',
  resources: 'types.containerd.io/opencontainers/runtime-spec/1/LinuxResources',
  runcOptions: 'containerd.runc.v1.Options',
} as const;

/** google.protobuf.Any as proto-loader hands it over (keepCase). */
export interface AnyMessage {
  type_url: string;
  value: Buffer;
}

/** google.protobuf.Timestamp (longs as strings). */
export interface Timestamp {
  seconds: string | number;
  nanos: number;
}

/** containerd.v1.types.Status, by name (enums as strings). */
export type TaskStatus = 'UNKNOWN' | 'CREATED' | 'RUNNING' | 'STOPPED' | 'PAUSED' | 'PAUSING';

/** containerd.v1.types.Process (the fields declared in task.proto). */
export interface ProcessMessage {
  container_id: string;
  id: string;
  pid: number;
  status: TaskStatus;
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
  exit_status: number;
  exited_at: Timestamp | null;
}

/** What the runc shim (io.containerd.runc.v2) is told at task create. */
export interface RuncOptions {
  noPivotRoot?: boolean;
  ioUid?: number;
  ioGid?: number;
  binaryName?: string;
  root?: string;
}

/** The service constructors of the loaded protos. */
export interface ContainerdServices {
  Tasks: grpc.ServiceClientConstructor;
  Containers: grpc.ServiceClientConstructor;
  Version: grpc.ServiceClientConstructor;
}

let services: ContainerdServices | undefined;
let runcOptionsType: protobuf.Type | undefined;

/** The gRPC service clients of berth's containerd protos (loaded once per process). */
export function containerdServices(): ContainerdServices {
  if (services) return services;
  const def = protoLoader.loadSync(SERVICE_FILES, { includeDirs: [PROTO_DIR], keepCase: true, longs: String, enums: String, defaults: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    containerd: {
      services: {
        tasks: { v1: { Tasks: grpc.ServiceClientConstructor } };
        containers: { v1: { Containers: grpc.ServiceClientConstructor } };
        version: { v1: { Version: grpc.ServiceClientConstructor } };
      };
    };
  };
  const s = pkg.containerd.services;
  services = { Tasks: s.tasks.v1.Tasks, Containers: s.containers.v1.Containers, Version: s.version.v1.Version };
  return services;
}

/** JSON in an Any under one of containerd's type URLs. */
export function jsonAny(typeUrl: string, value: unknown): AnyMessage {
  return { type_url: typeUrl, value: Buffer.from(JSON.stringify(value), 'utf8') };
}

export const specAny = (spec: OciSpec): AnyMessage => jsonAny(TYPE_URL.spec, spec);
export const processAny = (process: OciProcess): AnyMessage => jsonAny(TYPE_URL.process, process);
export const resourcesAny = (resources: OciResources): AnyMessage => jsonAny(TYPE_URL.resources, resources);

/** The runc shim's options as the Any of CreateTaskRequest.options. */
export function runcOptionsAny(opts: RuncOptions): AnyMessage {
  if (!runcOptionsType) {
    const root = new protobuf.Root();
    root.loadSync(`${PROTO_DIR}/containerd/runc-options.proto`, { keepCase: true });
    runcOptionsType = root.lookupType(TYPE_URL.runcOptions);
  }
  const type = runcOptionsType;
  // Only the fields set: proto3 leaves zero values off the wire.
  const fields: Record<string, unknown> = {};
  if (opts.noPivotRoot) fields.no_pivot_root = true;
  if (opts.ioUid) fields.io_uid = opts.ioUid;
  if (opts.ioGid) fields.io_gid = opts.ioGid;
  if (opts.binaryName) fields.binary_name = opts.binaryName;
  if (opts.root) fields.root = opts.root;
  return { type_url: TYPE_URL.runcOptions, value: Buffer.from(type.encode(type.fromObject(fields)).finish()) };
}

/** A protobuf Timestamp as RFC 3339 with nanoseconds; null when unset (zero). */
export function timestampToRfc3339(ts: Timestamp | null | undefined): string | null {
  if (!ts) return null;
  const seconds = BigInt(ts.seconds ?? 0);
  const nanos = BigInt(ts.nanos ?? 0);
  if (seconds <= 0n && nanos === 0n) return null;
  return formatRfc3339Nano(seconds * 1_000_000_000n + nanos);
}

/** containerd's task status as berth's runtime status (PAUSING counts as paused: it becomes paused). */
export function runtimeStatusOf(status: TaskStatus): RuntimeStatus {
  switch (status) {
    case 'CREATED':
      return 'created';
    case 'RUNNING':
      return 'running';
    case 'PAUSED':
    case 'PAUSING':
      return 'paused';
    default:
      return 'stopped';
  }
}

/** An exit as berth reports it, from containerd's exit status and time (`now` when containerd has none). */
export function exitInfoOf(id: string, exitStatus: number, exitedAt: Timestamp | null | undefined, now: () => string, execId?: string): ExitInfo {
  return {
    id,
    ...(execId ? { execId } : {}),
    exitCode: exitStatus,
    // The shim's exit status carries no OOM mark: the backend reads the container's memory cgroup (cgroup.ts).
    oomKilled: false,
    exitedAt: timestampToRfc3339(exitedAt) ?? now(),
  };
}

/**
 * A gRPC call's error as berth's typed error: the kind (and so the HTTP status) from the gRPC
 * code, the message naming the call and containerd's own words. No `cause`: the gRPC error's
 * message repeats those words, and the engine shows a cause chain whole.
 */
export function fromGrpcError(err: unknown, what: string): Error {
  const e = err as Partial<grpc.ServiceError>;
  const detail = typeof e?.details === 'string' && e.details ? e.details : (e as Error)?.message ?? String(err);
  const msg = `containerd: ${what}: ${detail}`;
  switch (e?.code) {
    case grpc.status.NOT_FOUND:
      return new NotFoundError(msg);
    case grpc.status.ALREADY_EXISTS:
    case grpc.status.FAILED_PRECONDITION:
      return new ConflictError(msg);
    case grpc.status.INVALID_ARGUMENT:
    case grpc.status.OUT_OF_RANGE:
      return new InvalidParameterError(msg);
    case grpc.status.UNIMPLEMENTED:
      return new NotImplementedError(msg);
    case grpc.status.UNAVAILABLE:
      return new UnavailableError(msg);
    default:
      return new SystemError(msg);
  }
}
