import { InvalidParameterError, NotImplementedError } from '../errors.js';
import type { OciNamespace, OciSpec } from '../oci.js';
import type { HostConfig } from '../types.js';
import type { SpecOpt } from './opts.js';

/** How the container gets one namespace: a new one, the host's (no entry), or join a path. */
export type NamespaceMode = 'new' | 'host' | { path: string };

export interface NamespacePlan {
  network: NamespaceMode;
  pid: NamespaceMode;
  ipc: NamespaceMode;
  uts: NamespaceMode;
  cgroup: NamespaceMode;
}

/** Paths of namespaces to join for `container:<id>` modes, found by the engine. */
export type JoinPaths = Partial<Record<'pid' | 'ipc' | 'uts' | 'cgroup', string>>;

function containerMode(kind: string, value: string, joined: string | undefined): NamespaceMode {
  if (joined) return { path: joined };
  throw new NotImplementedError(`${kind} "${value}" needs the other container's namespace path, which this engine does not provide yet`);
}

/**
 * The namespaces a container gets from its HostConfig: *Mode host → the host's namespace,
 * `container:<id>` → join the path in `join` (else NotImplementedError), anything else known
 * → a new namespace. Network: `networkNamespacePath` undefined → new (or host for
 * NetworkMode host), null → host, string → join. CgroupnsMode '' → private on cgroup v2,
 * host on v1 (dockerd's defaults).
 */
export function planNamespaces(
  hc: HostConfig,
  opts: { networkNamespacePath?: string | null; join?: JoinPaths; cgroupV2?: boolean } = {},
): NamespacePlan {
  const netMode = hc.NetworkMode ?? '';
  let network: NamespaceMode;
  if (opts.networkNamespacePath === null) network = 'host';
  else if (typeof opts.networkNamespacePath === 'string') network = { path: opts.networkNamespacePath };
  else if (netMode === 'host') network = 'host';
  else if (netMode.startsWith('container:')) network = containerMode('NetworkMode', netMode, undefined);
  else network = 'new';

  const pidMode = hc.PidMode ?? '';
  let pid: NamespaceMode;
  if (pidMode === '' || pidMode === 'private') pid = 'new';
  else if (pidMode === 'host') pid = 'host';
  else if (pidMode.startsWith('container:')) pid = containerMode('PidMode', pidMode, opts.join?.pid);
  else throw new InvalidParameterError(`invalid PID mode: ${pidMode}`);

  const ipcMode = hc.IpcMode ?? '';
  let ipc: NamespaceMode;
  if (['', 'private', 'shareable', 'none'].includes(ipcMode)) ipc = 'new';
  else if (ipcMode === 'host') ipc = 'host';
  else if (ipcMode.startsWith('container:')) ipc = containerMode('IpcMode', ipcMode, opts.join?.ipc);
  else throw new InvalidParameterError(`invalid IPC mode: ${ipcMode}`);

  const utsMode = hc.UTSMode ?? '';
  let uts: NamespaceMode;
  if (utsMode === '') uts = 'new';
  else if (utsMode === 'host') uts = 'host';
  else if (utsMode.startsWith('container:')) uts = containerMode('UTSMode', utsMode, opts.join?.uts);
  else throw new InvalidParameterError(`invalid UTS mode: ${utsMode}`);

  const cgMode = hc.CgroupnsMode ?? '';
  let cgroup: NamespaceMode;
  if (cgMode === 'private') cgroup = 'new';
  else if (cgMode === 'host') cgroup = 'host';
  else if (cgMode === '') cgroup = opts.cgroupV2 ? 'new' : 'host';
  else throw new InvalidParameterError(`invalid cgroup namespace mode: ${String(cgMode)}`);

  return { network, pid, ipc, uts, cgroup };
}

/** Sets one namespace: 'new' → entry without path, 'host' → no entry, path → entry with path. */
export function withNamespace(type: OciNamespace['type'], mode: NamespaceMode): SpecOpt {
  return (spec: OciSpec) => {
    const list = [...(spec.linux?.namespaces ?? [])];
    const i = list.findIndex((n) => n.type === type);
    const entry: OciNamespace | null = mode === 'host' ? null : mode === 'new' ? { type } : { type, path: mode.path };
    if (i >= 0) {
      if (entry) list[i] = entry;
      else list.splice(i, 1);
    } else if (entry) {
      list.push(entry);
    }
    return { ...spec, linux: { ...(spec.linux ?? {}), namespaces: list } };
  };
}

export function withNamespaces(plan: NamespacePlan): SpecOpt[] {
  return [
    withNamespace('network', plan.network),
    withNamespace('uts', plan.uts),
    withNamespace('pid', plan.pid),
    withNamespace('ipc', plan.ipc),
    withNamespace('cgroup', plan.cgroup),
  ];
}
