/**
 * Type checks of request bodies, as dockerd's JSON decoder does them: a field of the wrong
 * type is a 400 naming the field, before anything reaches the engine. Then the values, with
 * the core's own checks (config-validate.ts, hostconfig-validate.ts: dockerd's
 * verifyContainerSettings), so a backend is never handed a create or update dockerd refuses.
 */
import { InvalidParameterError, normaliseName, verifyContainerConfig, verifyHostConfig, type ContainerConfig, type HostConfig, type HostConfigCheckMode } from '@berth/core';

type Kind = 'string' | 'bool' | 'int' | 'strings' | 'strslice' | 'strmap' | 'object' | 'array' | 'any';

const CONFIG_FIELDS: Record<string, Kind> = {
  Hostname: 'string',
  Domainname: 'string',
  User: 'string',
  AttachStdin: 'bool',
  AttachStdout: 'bool',
  AttachStderr: 'bool',
  ExposedPorts: 'object',
  Tty: 'bool',
  OpenStdin: 'bool',
  StdinOnce: 'bool',
  Env: 'strings',
  Cmd: 'strslice',
  Healthcheck: 'object',
  ArgsEscaped: 'bool',
  Image: 'string',
  Volumes: 'object',
  WorkingDir: 'string',
  Entrypoint: 'strslice',
  NetworkDisabled: 'bool',
  MacAddress: 'string',
  OnBuild: 'strings',
  Labels: 'strmap',
  StopSignal: 'string',
  StopTimeout: 'int',
  Shell: 'strslice',
};

const HOST_FIELDS: Record<string, Kind> = {
  CpuShares: 'int',
  Memory: 'int',
  CgroupParent: 'string',
  BlkioWeight: 'int',
  CpuPeriod: 'int',
  CpuQuota: 'int',
  CpuRealtimePeriod: 'int',
  CpuRealtimeRuntime: 'int',
  CpusetCpus: 'string',
  CpusetMems: 'string',
  Devices: 'array',
  DeviceCgroupRules: 'strings',
  DeviceRequests: 'array',
  KernelMemoryTCP: 'int',
  MemoryReservation: 'int',
  MemorySwap: 'int',
  MemorySwappiness: 'int',
  NanoCpus: 'int',
  OomKillDisable: 'bool',
  Init: 'bool',
  PidsLimit: 'int',
  Ulimits: 'array',
  Binds: 'strings',
  ContainerIDFile: 'string',
  LogConfig: 'object',
  NetworkMode: 'string',
  PortBindings: 'object',
  RestartPolicy: 'object',
  AutoRemove: 'bool',
  VolumeDriver: 'string',
  VolumesFrom: 'strings',
  Mounts: 'array',
  ConsoleSize: 'array',
  Annotations: 'strmap',
  CapAdd: 'strings',
  CapDrop: 'strings',
  CgroupnsMode: 'string',
  Dns: 'strings',
  DnsOptions: 'strings',
  DnsSearch: 'strings',
  ExtraHosts: 'strings',
  GroupAdd: 'strings',
  IpcMode: 'string',
  Cgroup: 'string',
  Links: 'strings',
  OomScoreAdj: 'int',
  PidMode: 'string',
  Privileged: 'bool',
  PublishAllPorts: 'bool',
  ReadonlyRootfs: 'bool',
  SecurityOpt: 'strings',
  StorageOpt: 'strmap',
  Tmpfs: 'strmap',
  UTSMode: 'string',
  UsernsMode: 'string',
  ShmSize: 'int',
  Sysctls: 'strmap',
  Runtime: 'string',
  Isolation: 'string',
  MaskedPaths: 'strings',
  ReadonlyPaths: 'strings',
  BlkioWeightDevice: 'array',
  BlkioDeviceReadBps: 'array',
  BlkioDeviceWriteBps: 'array',
  BlkioDeviceReadIOps: 'array',
  BlkioDeviceWriteIOps: 'array',
  CpuCount: 'int',
  CpuPercent: 'int',
  IOMaximumIOps: 'int',
  IOMaximumBandwidth: 'int',
};

function goType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return 'number';
  return typeof v;
}

function bad(field: string, v: unknown, want: string): never {
  throw new InvalidParameterError(`json: cannot unmarshal ${goType(v)} into Go struct field ${field} of type ${want}`);
}

function check(field: string, kind: Kind, v: unknown): unknown {
  if (v === null || v === undefined) return v;
  switch (kind) {
    case 'string':
      return typeof v === 'string' ? v : bad(field, v, 'string');
    case 'bool':
      return typeof v === 'boolean' ? v : bad(field, v, 'bool');
    case 'int':
      return typeof v === 'number' && Number.isInteger(v) ? v : bad(field, v, 'int64');
    case 'strings':
      return Array.isArray(v) && v.every((x) => typeof x === 'string') ? v : bad(field, v, '[]string');
    case 'strslice':
      if (typeof v === 'string') return [v];
      return Array.isArray(v) && v.every((x) => typeof x === 'string') ? v : bad(field, v, 'strslice.StrSlice');
    case 'strmap':
      if (typeof v !== 'object' || Array.isArray(v)) bad(field, v, 'map[string]string');
      for (const x of Object.values(v as object)) if (typeof x !== 'string') bad(field, x, 'string');
      return v;
    case 'object':
      return typeof v === 'object' && !Array.isArray(v) ? v : bad(field, v, 'object');
    case 'array':
      return Array.isArray(v) ? v : bad(field, v, 'array');
    default:
      return v;
  }
}

function checkFields<T>(prefix: string, obj: Record<string, unknown>, fields: Record<string, Kind>): T {
  const out: Record<string, unknown> = { ...obj };
  for (const [k, kind] of Object.entries(fields)) {
    if (k in obj) out[k] = check(`${prefix}${k}`, kind, obj[k]);
  }
  return out as T;
}

/**
 * Type-check a HostConfig, then check its values as dockerd does for `mode`: a create (or a
 * legacy start body, which replaces the container's HostConfig) or an update.
 */
export function checkHostConfig(v: unknown, prefix = 'HostConfig.', mode: HostConfigCheckMode = 'create'): HostConfig {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) bad(prefix.replace(/\.$/, ''), v, 'container.HostConfig');
  const hc = checkFields<HostConfig>(prefix, v as Record<string, unknown>, HOST_FIELDS);
  if (hc.RestartPolicy) {
    const rp = hc.RestartPolicy as Record<string, unknown>;
    check(`${prefix}RestartPolicy.Name`, 'string', rp.Name);
    check(`${prefix}RestartPolicy.MaximumRetryCount`, 'int', rp.MaximumRetryCount);
  }
  if (typeof hc.KernelMemoryTCP === 'number' && hc.KernelMemoryTCP < 0) {
    throw new InvalidParameterError(`invalid KernelMemoryTCP: ${hc.KernelMemoryTCP} must not be negative`);
  }
  if (hc.ConsoleSize && (hc.ConsoleSize.length !== 2 || hc.ConsoleSize.some((x) => typeof x !== 'number' || x < 0 || !Number.isInteger(x)))) {
    throw new InvalidParameterError('invalid ConsoleSize: expected [height, width] of non-negative integers');
  }
  verifyHostConfig(hc, { mode });
  return hc;
}

export interface CreateBody {
  config: ContainerConfig;
  hostConfig: HostConfig;
  networkingConfig: { EndpointsConfig?: Record<string, unknown> } | null;
}

/** Split and type-check a POST /containers/create body (Config fields at the top level). */
export function checkCreateBody(body: Record<string, unknown>): CreateBody {
  const { HostConfig: hc, NetworkingConfig: nc, ...rest } = body;
  const config = checkFields<ContainerConfig>('Config.', rest, CONFIG_FIELDS);
  if (config.StopTimeout !== undefined && config.StopTimeout !== null && config.StopTimeout < -1) {
    throw new InvalidParameterError(`invalid StopTimeout: ${config.StopTimeout}`);
  }
  if (nc !== undefined && nc !== null && (typeof nc !== 'object' || Array.isArray(nc))) bad('NetworkingConfig', nc, 'network.NetworkingConfig');
  const networkingConfig = (nc ?? null) as CreateBody['networkingConfig'];
  if (networkingConfig?.EndpointsConfig !== undefined) check('NetworkingConfig.EndpointsConfig', 'object', networkingConfig.EndpointsConfig);
  if (config.Healthcheck) {
    const h = config.Healthcheck as Record<string, unknown>;
    check('Config.Healthcheck.Test', 'strslice', h.Test);
    for (const f of ['Interval', 'Timeout', 'StartPeriod', 'StartInterval', 'Retries']) check(`Config.Healthcheck.${f}`, 'int', h[f]);
  }
  verifyContainerConfig(config);
  const hostConfig = checkHostConfig(hc);
  return { config, hostConfig, networkingConfig };
}

/** Docker's container name rule (core's normaliseName, 400 when invalid), without the leading "/". */
export function checkContainerName(name: string): string {
  return normaliseName(name).slice(1);
}
