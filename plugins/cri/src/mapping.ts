/**
 * The mapping between CRI messages and berth's engine (pure functions, unit-tested without a
 * runtime): a CRI ContainerConfig in a pod → the engine's create options (Docker's Config /
 * HostConfig, labelled as cri-dockerd labels pod containers so a Docker-API client sees them),
 * and an engine record → the CRI Container / ContainerStatus. Timestamps are int64 nanoseconds,
 * passed to gRPC as decimal strings (a JS number loses precision past 2^53).
 */
import { parseLogTime, type ContainerRecord, type CreateOptions, type DeepReadonly, type HostConfig } from '@berth/core';
import type { CniPortMapping, PodRecord } from './pods.js';

/** cri-dockerd's label keys (so tools that know Docker-run pods read berth's the same way). */
export const LABEL = {
  type: 'io.kubernetes.docker.type',
  sandboxId: 'io.kubernetes.sandbox.id',
  logPath: 'io.kubernetes.container.logpath',
  /** berth's own: the CRI metadata (cri-dockerd parses it back from the container's name). */
  name: 'io.berth.cri.container.name',
  attempt: 'io.berth.cri.container.attempt',
  image: 'io.berth.cri.image',
  /** berth's own: `pod` when the container joins its pod's PID namespace (the pod's pid: POD; pid-holder.ts). */
  pidNamespace: 'io.berth.cri.pid-namespace',
} as const;
/** cri-dockerd keeps a container's CRI annotations as labels with this prefix. */
export const ANNOTATION_PREFIX = 'annotation.';
export const TYPE_CONTAINER = 'container';

export const ContainerState = { CREATED: 0, RUNNING: 1, EXITED: 2, UNKNOWN: 3 } as const;
export const PodState = { READY: 0, NOTREADY: 1 } as const;
/** NamespaceMode: POD = 0, CONTAINER = 1, NODE = 2, TARGET = 3. */
export const NamespaceMode = { POD: 0, CONTAINER: 1, NODE: 2, TARGET: 3 } as const;
const SECCOMP = { RuntimeDefault: 0, Unconfined: 1, Localhost: 2 } as const;

export type Msg = Record<string, any>;

/** RFC 3339 (nanoseconds) → int64 nanoseconds as a decimal string; Docker's zero time → '0'. */
export function toNanos(rfc3339: string | undefined): string {
  if (!rfc3339 || rfc3339.startsWith('0001-')) return '0';
  try {
    return parseLogTime(rfc3339).toString();
  } catch {
    return '0';
  }
}

/** The Docker name cri-dockerd gives a pod's container: k8s_<container>_<pod>_<namespace>_<uid>_<attempt>. */
export function containerName(pod: PodRecord, meta: { name: string; attempt?: number }): string {
  return ['k8s', meta.name, pod.metadata.name, pod.metadata.namespace, pod.metadata.uid, String(meta.attempt ?? 0)].join('_');
}

/** CRI's state of an engine container. */
export function containerState(rec: DeepReadonly<ContainerRecord>): number {
  switch (rec.State.Status) {
    case 'created':
      return ContainerState.CREATED;
    case 'running':
    case 'paused':
    case 'restarting':
      return ContainerState.RUNNING;
    case 'exited':
    case 'dead':
      return ContainerState.EXITED;
    default:
      return ContainerState.UNKNOWN;
  }
}

function seccompOpt(sc: Msg | undefined, legacyPath: string | undefined, readFile: (p: string) => string): string | undefined {
  if (sc && sc.profile_type === SECCOMP.Unconfined) return 'seccomp=unconfined';
  if (sc && sc.profile_type === SECCOMP.Localhost) return `seccomp=${readFile(sc.localhost_ref)}`;
  if (!sc && legacyPath) {
    if (legacyPath === 'unconfined') return 'seccomp=unconfined';
    if (legacyPath.startsWith('localhost/')) return `seccomp=${readFile(legacyPath.slice('localhost/'.length))}`;
  }
  return undefined; // RuntimeDefault: the seccomp plugin's default profile
}

function apparmorOpt(aa: Msg | undefined, legacy: string | undefined): string | undefined {
  if (aa && aa.profile_type === SECCOMP.Unconfined) return 'apparmor=unconfined';
  if (aa && aa.profile_type === SECCOMP.Localhost) return `apparmor=${aa.localhost_ref}`;
  if (!aa && legacy) {
    if (legacy === 'unconfined') return 'apparmor=unconfined';
    if (legacy.startsWith('localhost/')) return `apparmor=${legacy.slice('localhost/'.length)}`;
  }
  return undefined;
}

/** PodSandboxConfig.dns_config → the pod record's (absent or empty: none, the host's resolv.conf). */
export function dnsOf(dns: Msg | undefined): PodRecord['dns'] {
  const list = (v: unknown): string[] => (Array.isArray(v) ? v.map(String).filter(Boolean) : []);
  const d = { servers: list(dns?.servers), searches: list(dns?.searches), options: list(dns?.options) };
  return d.servers.length || d.searches.length || d.options.length ? d : undefined;
}

const PROTOCOLS = ['tcp', 'udp', 'sctp'] as const;

/** PodSandboxConfig.port_mappings → CNI portMappings: those with a host_port (the others only document a port, as kubelet's runtimes treat them). */
export function portMappingsOf(mappings: Msg[] | undefined): CniPortMapping[] {
  return (mappings ?? [])
    .filter((m) => Number(m.host_port) > 0)
    .map((m) => {
      const hostPort = Number(m.host_port);
      const containerPort = Number(m.container_port);
      if (!(hostPort <= 65535 && containerPort >= 1 && containerPort <= 65535)) throw new TypeError(`invalid port mapping ${JSON.stringify(m)}`);
      const protocol = PROTOCOLS[Number(m.protocol ?? 0)];
      if (!protocol) throw new TypeError(`invalid port mapping protocol ${JSON.stringify(m.protocol)}`);
      return { hostPort, containerPort, protocol, ...(m.host_ip ? { hostIP: String(m.host_ip) } : {}) };
    });
}

/** Linux resources of CRI (LinuxContainerResources) as Docker's HostConfig resource fields. */
export function resourcesOf(r: Msg | undefined): Partial<HostConfig> {
  if (!r) return {};
  const n = (v: unknown): number => Number(v ?? 0);
  const out: Partial<HostConfig> = {};
  if (n(r.cpu_period)) out.CpuPeriod = n(r.cpu_period);
  if (n(r.cpu_quota)) out.CpuQuota = n(r.cpu_quota);
  if (n(r.cpu_shares)) out.CpuShares = n(r.cpu_shares);
  if (n(r.memory_limit_in_bytes)) out.Memory = n(r.memory_limit_in_bytes);
  if (n(r.memory_swap_limit_in_bytes)) out.MemorySwap = n(r.memory_swap_limit_in_bytes);
  if (r.cpuset_cpus) out.CpusetCpus = r.cpuset_cpus;
  if (r.cpuset_mems) out.CpusetMems = r.cpuset_mems;
  return out;
}

export interface CreateMapping {
  /** Image reference the engine runs (resolved by the caller). */
  image: string;
  /** Host path of the CRI log file (log_directory + log_path), '' when kubelet gave none. */
  logPath: string;
  /** Read a Localhost seccomp profile (its JSON goes to the engine like `docker run --security-opt seccomp=FILE`). */
  readFile: (path: string) => string;
  /** The runtime the pod runs with (its RuntimeClass handler), '' = the engine's default. */
  runtime: string;
}

/** A CRI CreateContainer request (config of the container, the pod it belongs to) → engine create options. */
export function createOptionsOf(pod: PodRecord, config: Msg, m: CreateMapping): CreateOptions {
  const meta = config.metadata ?? {};
  if (!meta.name) throw new TypeError('container metadata.name is required');
  const labels: Record<string, string> = { ...(config.labels ?? {}) };
  for (const [k, v] of Object.entries((config.annotations ?? {}) as Record<string, string>)) labels[ANNOTATION_PREFIX + k] = v;
  labels[LABEL.type] = TYPE_CONTAINER;
  labels[LABEL.sandboxId] = pod.id;
  labels[LABEL.name] = meta.name;
  labels[LABEL.attempt] = String(meta.attempt ?? 0);
  labels[LABEL.image] = config.image?.image ?? m.image;
  if (m.logPath) labels[LABEL.logPath] = m.logPath;

  const lx: Msg = config.linux ?? {};
  const sc: Msg = lx.security_context ?? {};
  const ns: Msg = sc.namespace_options ?? {};
  // A pod sharing its PID namespace: its containers join it unless one asks for its own, the host's or a target container's (as containerd decides).
  const pidTarget = ns.pid === NamespaceMode.TARGET;
  if (pidTarget && !ns.target_id) throw new TypeError('namespace_options.pid TARGET needs a target_id');
  if (pod.namespaces.pid === NamespaceMode.POD && ns.pid !== NamespaceMode.CONTAINER && ns.pid !== NamespaceMode.NODE && !pidTarget) labels[LABEL.pidNamespace] = 'pod';
  const env = ((config.envs ?? []) as Msg[]).map((kv) => `${kv.key}=${Buffer.isBuffer(kv.value) ? kv.value.toString() : (kv.value ?? '')}`);
  const user = sc.run_as_user ? String(sc.run_as_user.value) + (sc.run_as_group ? `:${sc.run_as_group.value}` : '') : (sc.run_as_username ?? '');
  const securityOpt: string[] = [];
  const seccomp = seccompOpt(sc.seccomp, sc.seccomp_profile_path || undefined, m.readFile);
  if (seccomp) securityOpt.push(seccomp);
  const apparmor = apparmorOpt(sc.apparmor, sc.apparmor_profile || undefined);
  if (apparmor) securityOpt.push(apparmor);
  if (sc.no_new_privs) securityOpt.push('no-new-privileges');
  const binds = ((config.mounts ?? []) as Msg[]).map((mt) => `${mt.host_path}:${mt.container_path}${mt.readonly ? ':ro' : ''}`);
  const devices = ((config.devices ?? []) as Msg[]).map((d) => ({ PathOnHost: d.host_path, PathInContainer: d.container_path, CgroupPermissions: d.permissions || 'rwm' }));
  const hostNet = pod.namespaces.network === NamespaceMode.NODE;

  const hostConfig: HostConfig = {
    NetworkMode: hostNet ? 'host' : 'none',
    ...(pod.namespaces.pid === NamespaceMode.NODE || ns.pid === NamespaceMode.NODE ? { PidMode: 'host' } : {}),
    // TARGET (an ephemeral container, `kubectl debug --target`): the target container's PID namespace, joined at start like `docker run --pid container:<id>`.
    ...(pidTarget ? { PidMode: `container:${ns.target_id}` } : {}),
    ...(pod.namespaces.ipc === NamespaceMode.NODE ? { IpcMode: 'host' } : {}),
    ...(hostNet ? { UTSMode: 'host' } : {}),
    ...(binds.length ? { Binds: binds } : {}),
    ...(devices.length ? { Devices: devices } : {}),
    ...(sc.privileged ? { Privileged: true } : {}),
    ...(sc.readonly_rootfs ? { ReadonlyRootfs: true } : {}),
    ...(sc.capabilities?.add_capabilities?.length ? { CapAdd: sc.capabilities.add_capabilities } : {}),
    ...(sc.capabilities?.drop_capabilities?.length ? { CapDrop: sc.capabilities.drop_capabilities } : {}),
    ...(securityOpt.length ? { SecurityOpt: securityOpt } : {}),
    ...(sc.masked_paths?.length ? { MaskedPaths: sc.masked_paths } : {}),
    ...(sc.readonly_paths?.length ? { ReadonlyPaths: sc.readonly_paths } : {}),
    ...(sc.supplemental_groups?.length ? { GroupAdd: (sc.supplemental_groups as unknown[]).map(String) } : {}),
    ...(lx.resources && Number(lx.resources.oom_score_adj) ? { OomScoreAdj: Number(lx.resources.oom_score_adj) } : {}),
    ...resourcesOf(lx.resources),
    ...(pod.cgroupParent ? { CgroupParent: pod.cgroupParent } : {}),
    ...(m.runtime ? { Runtime: m.runtime } : {}),
    // The pod's DNS config is each container's resolv.conf (network-basic writes it from these);
    // the CRI lists are the whole file: no search list given means none, not the host's.
    ...(pod.dns ? { ...(pod.dns.servers.length ? { Dns: pod.dns.servers } : {}), DnsSearch: pod.dns.searches.length ? pod.dns.searches : ['.'], ...(pod.dns.options.length ? { DnsOptions: pod.dns.options } : {}) } : {}),
  };
  return {
    name: containerName(pod, meta),
    Config: {
      Image: m.image,
      ...(config.command?.length ? { Entrypoint: config.command } : {}),
      ...(config.args?.length ? { Cmd: config.args } : {}),
      ...(env.length ? { Env: env } : {}),
      ...(config.working_dir ? { WorkingDir: config.working_dir } : {}),
      ...(user ? { User: user } : {}),
      ...(config.tty ? { Tty: true } : {}),
      ...(config.stdin ? { OpenStdin: true, AttachStdin: true } : {}),
      ...(config.stdin_once ? { StdinOnce: true } : {}),
      ...(!hostNet && pod.hostname ? { Hostname: pod.hostname } : {}),
      Labels: labels,
    },
    HostConfig: hostConfig,
  };
}

/** The CRI annotations and labels of a pod container (split back from its engine labels). */
export function labelsOf(rec: DeepReadonly<ContainerRecord>): { labels: Record<string, string>; annotations: Record<string, string> } {
  const labels: Record<string, string> = {};
  const annotations: Record<string, string> = {};
  const ours = new Set<string>(Object.values(LABEL));
  for (const [k, v] of Object.entries(rec.Config.Labels ?? {})) {
    if (k.startsWith(ANNOTATION_PREFIX)) annotations[k.slice(ANNOTATION_PREFIX.length)] = v;
    else if (!ours.has(k)) labels[k] = v;
  }
  return { labels, annotations };
}

/** True for a container made through the CRI (cri-dockerd's type label). */
export function isCriContainer(rec: DeepReadonly<ContainerRecord>): boolean {
  return rec.Config.Labels?.[LABEL.type] === TYPE_CONTAINER && !!rec.Config.Labels?.[LABEL.sandboxId];
}

function metadataOf(rec: DeepReadonly<ContainerRecord>): Msg {
  const l = rec.Config.Labels ?? {};
  return { name: l[LABEL.name] ?? rec.Name.replace(/^\//, ''), attempt: Number(l[LABEL.attempt] ?? 0) };
}

/** CRI Container (ListContainers) of an engine record. */
export function containerOf(rec: DeepReadonly<ContainerRecord>): Msg {
  const { labels, annotations } = labelsOf(rec);
  const l = rec.Config.Labels ?? {};
  return {
    id: rec.ID,
    pod_sandbox_id: l[LABEL.sandboxId] ?? '',
    metadata: metadataOf(rec),
    image: { image: l[LABEL.image] ?? rec.Config.Image },
    image_ref: rec.Image,
    image_id: rec.Image,
    state: containerState(rec),
    created_at: toNanos(rec.Created),
    labels,
    annotations,
  };
}

/** CRI ContainerStatus of an engine record. */
export function containerStatusOf(rec: DeepReadonly<ContainerRecord>): Msg {
  const c = containerOf(rec);
  const st = rec.State;
  const state = c.state as number;
  const reason = state === ContainerState.EXITED ? (st.OOMKilled ? 'OOMKilled' : st.ExitCode === 0 ? 'Completed' : 'Error') : '';
  const mounts = (rec.HostConfig.Binds ?? []).map((b) => {
    const [host, ctr, mode] = b.split(':');
    return { host_path: host, container_path: ctr, readonly: mode === 'ro' };
  });
  return {
    id: rec.ID,
    metadata: c.metadata,
    state,
    created_at: c.created_at,
    started_at: state === ContainerState.CREATED ? '0' : toNanos(st.StartedAt),
    finished_at: state === ContainerState.EXITED ? toNanos(st.FinishedAt) : '0',
    exit_code: state === ContainerState.EXITED ? st.ExitCode : 0,
    image: c.image,
    image_ref: rec.Image,
    image_id: rec.Image,
    reason,
    message: st.Error ?? '',
    labels: c.labels,
    annotations: c.annotations,
    mounts,
    log_path: rec.Config.Labels?.[LABEL.logPath] ?? '',
  };
}

/** Does a label map carry every key=value of a selector? */
export function matchesSelector(labels: Record<string, string>, selector: Record<string, string> | undefined): boolean {
  return Object.entries(selector ?? {}).every(([k, v]) => labels[k] === v);
}
