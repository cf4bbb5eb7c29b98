/**
 * What dockerd's verifyContainerSettings checks of a HostConfig, with dockerd's messages
 * (InvalidParameterError → 400). ONE module for both paths: `create` (POST /containers/create,
 * and a legacy start body) checks everything; `update` (POST /containers/{id}/update) checks
 * what an update may carry — the restart policy and the resources — on the changes alone,
 * so create and update can never disagree about a value.
 *
 * The checks that need no I/O reuse the spec builder's validators (capabilities, security
 * options, namespace modes, resources, ulimits, sysctls, device rules), so what `start` would
 * refuse is refused at create already, before anything is stored. Checks that need the host
 * (bind sources, device nodes, users in the rootfs) stay at start.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { isIP } from 'node:net';
import path from 'node:path';
import { InvalidParameterError, errorKind, errorMessage } from './errors.js';
import type { OciResources } from './oci.js';
import type { HostConfig, RestartPolicy } from './types.js';
import { parseSize } from './util.js';
import { knownCapabilities, parseCapabilities } from './spec/caps.js';
import { isValidDevicePermissions, parseDeviceCgroupRule } from './spec/devices.js';
import { parseApiMount, parseBind } from './spec/mounts.js';
import { planNamespaces } from './spec/namespaces.js';
import { applyOpts } from './spec/opts.js';
import { parseUlimits, validateResources, withResources } from './spec/resources.js';
import { parseSecurityOpts, type SecurityOptions } from './spec/security.js';
import { validateSysctls } from './spec/sysctl.js';

export type HostConfigCheckMode = 'create' | 'update';

export interface HostConfigCheckOptions {
  mode: HostConfigCheckMode;
  /** CPUs NanoCpus is bounded by (dockerd: sysinfo.NumCPU); default: this host's. */
  cpuCount?: number;
  /**
   * The security options the loaded plugins announced (`engine.securityOptions()`): with it,
   * create refuses a confinement option no loaded plugin enforces (verifyConfinement).
   */
  securityOptions?: readonly string[];
}

/**
 * `apparmor=NAME` and `seccomp=<profile>` need the plugin that enforces them (it announces
 * `name=apparmor` / `name=seccomp`): without it — a host without AppArmor, a build without the
 * plugin — the container would run without the protection asked for, so create refuses it
 * (dockerd ignores apparmor= silently; Podman refuses). `unconfined` (and seccomp's `builtin`)
 * ask for nothing that needs enforcing. Likewise a `UsernsMode` other than `host` needs
 * `name=userns` (the userns plugin, loaded with berthd --userns-remap).
 */
export function verifyConfinement(security: SecurityOptions, announced: readonly string[], usernsMode?: string): void {
  const has = (name: string) => announced.some((o) => o === `name=${name}` || o.startsWith(`name=${name},`));
  // UsernsMode other than host (e.g. the userns plugin's `auto`) needs that plugin: without it the container would share the host's IDs
  if (usernsMode && usernsMode !== 'host' && !has('userns')) {
    throw bad(`invalid UsernsMode ${JSON.stringify(usernsMode)}: user namespaces are not enabled on this daemon (start berthd with --userns-remap); use "host" or leave it out`);
  }
  if (security.apparmor && security.apparmor !== 'unconfined' && !has('apparmor')) {
    throw bad(`invalid --security-opt apparmor=${security.apparmor}: AppArmor is not enabled on this daemon (no AppArmor on the host, or the apparmor plugin is not loaded); use apparmor=unconfined or leave the option out`);
  }
  if (security.seccomp && security.seccomp !== 'unconfined' && security.seccomp !== 'builtin' && !has('seccomp')) {
    throw bad('invalid --security-opt seccomp=<profile>: seccomp is not enabled on this daemon (no seccomp in the kernel, or the seccomp plugin is not loaded), cannot run a custom seccomp profile');
  }
}

const bad = (msg: string) => new InvalidParameterError(msg);

/** The log drivers berth has; anything else is refused at create, as dockerd's plugin lookup does. */
export const LOG_DRIVERS: ReadonlySet<string> = new Set(['', 'json-file', 'none']);
const JSON_FILE_OPTS = new Set(['max-size', 'max-file', 'compress', 'labels', 'labels-regex', 'env', 'env-regex', 'tag']);
const PROTOS = new Set(['tcp', 'udp', 'sctp']);
/** Local volume names (dockerd's names.RestrictedNamePattern). */
const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

/** dockerd's ValidateRestartPolicy (API ≥ 1.44 wording); "" accepts any count, for old clients. */
export function verifyRestartPolicy(rp: RestartPolicy | null | undefined): void {
  const name = rp?.Name ?? '';
  const max = rp?.MaximumRetryCount ?? 0;
  switch (name) {
    case 'always':
    case 'unless-stopped':
    case 'no':
      if (max !== 0) {
        throw bad(`invalid restart policy: maximum retry count can only be used with 'on-failure'${max < 0 ? ' and cannot be negative' : ''}`);
      }
      return;
    case 'on-failure':
      if (max < 0) throw bad('invalid restart policy: maximum retry count cannot be negative');
      return;
    case '':
      return;
    default:
      throw bad(`invalid restart policy: unknown policy '${name}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'`);
  }
}

/**
 * The log driver and its options: an unknown driver as dockerd's plugin lookup answers it;
 * json-file options by name, sizes and counts by value. `max-file` without `max-size` is
 * accepted (dockerd ignores it then).
 */
export function verifyLogConfig(lc: HostConfig['LogConfig']): void {
  const type = lc?.Type ?? '';
  if (!LOG_DRIVERS.has(type)) throw bad(`error looking up logging plugin ${type}: plugin "${type}" not found`);
  if (type === 'none') return;
  const opts = lc?.Config ?? {};
  for (const key of Object.keys(opts)) {
    if (!JSON_FILE_OPTS.has(key)) throw bad(`unknown log opt '${key}' for json-file log driver`);
  }
  if (opts['max-size'] !== undefined) parseSize(opts['max-size']);
  if (opts['max-file'] !== undefined && !/^[1-9]\d*$/.test(opts['max-file'])) throw bad(`invalid value for max-file: ${opts['max-file']}`);
}

/** A port or a port range ("80", "8000-8010"), each 0-65535 (go-connections' ParsePortRange). */
function isPortRange(s: string, allowRange: boolean): boolean {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(s);
  if (!m || (m[2] !== undefined && !allowRange)) return false;
  const start = Number(m[1]);
  const end = m[2] === undefined ? start : Number(m[2]);
  return start <= 65535 && end <= 65535 && end >= start;
}

/** "80/tcp" → port and protocol (tcp when absent), as nat.SplitProtoPort; bad numbers and protocols refused. */
export function verifyPortKey(key: string, allowRange: boolean): void {
  const slash = key.indexOf('/');
  const port = slash < 0 ? key : key.slice(0, slash);
  const proto = slash < 0 ? 'tcp' : key.slice(slash + 1);
  if (!isPortRange(port, allowRange)) throw bad(`invalid port specification: ${JSON.stringify(port)}`);
  if (!PROTOS.has(proto.toLowerCase())) throw bad(`invalid proto: ${proto}`);
}

/** dockerd's validatePortBindings: the container port, then each HostPort ("" = any). */
export function verifyPortBindings(pb: HostConfig['PortBindings']): void {
  for (const [key, bindings] of Object.entries(pb ?? {})) {
    verifyPortKey(key, false);
    for (const b of bindings ?? []) {
      const hostPort = b?.HostPort ?? '';
      if (hostPort !== '' && !isPortRange(hostPort, true)) throw bad(`invalid port specification: ${JSON.stringify(hostPort)}`);
    }
  }
}

/** dockerd's ValidateExtraHost: "name:ip" or "name=ip", ip an address (IPv6 may be in brackets) or host-gateway. */
export function verifyExtraHost(entry: string): void {
  const sep = entry.includes('=') ? '=' : ':';
  const at = entry.indexOf(sep);
  if (at <= 0) throw bad(`bad format for add-host: ${JSON.stringify(entry)}`);
  const ip = entry.slice(at + 1).replace(/^\[(.*)\]$/, '$1');
  if (ip !== 'host-gateway' && isIP(ip) === 0) throw bad(`invalid IP address in add-host: ${JSON.stringify(ip)}`);
}

/** dockerd's local volume driver name check, with the message `docker run -v name:/dst` gets. */
export function verifyVolumeName(name: string): void {
  if (name.length === 1) throw bad(`create ${name}: volume name is too short, names should be at least two alphanumeric characters`);
  if (!VOLUME_NAME.test(name)) {
    throw bad(
      `create ${name}: ${JSON.stringify(name)} includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path`,
    );
  }
}

/** Named volumes in Binds and Mounts: an invalid name is a 400, before "volumes are not supported yet". */
function verifyVolumeNames(hc: HostConfig): void {
  for (const b of hc.Binds ?? []) {
    const m = parseBind(b);
    if (m.type === 'volume' && m.source) verifyVolumeName(m.source);
  }
  for (const m of hc.Mounts ?? []) {
    if (m?.Type === 'volume' && m.Source) verifyVolumeName(m.Source);
  }
}

/** dockerd's validateMountConfig at create: a Mounts bind source must exist unless CreateMountpoint asks for it. */
function verifyBindSources(hc: HostConfig): void {
  for (const m of hc.Mounts ?? []) {
    if (m?.Type !== 'bind') continue;
    parseApiMount(m); // its own errors first (missing or relative fields), as dockerd orders them
    if (m.BindOptions?.CreateMountpoint) continue;
    if (m.Source && !existsSync(m.Source)) throw bad(`invalid mount config for type "bind": bind source path does not exist: ${m.Source}`);
  }
}

function verifyNamespaceModes(hc: HostConfig): void {
  if (hc.NetworkMode === 'container:') throw bad('Invalid network mode: invalid container format container:<name|id>');
  try {
    planNamespaces(hc);
  } catch (err) {
    // container:<id> modes are joined at start; only a malformed mode is the client's fault
    if (errorKind(err) !== 'NotImplemented') throw err;
  }
  validateSysctls(hc.Sysctls, { privateIpc: hc.IpcMode !== 'host', privateNetwork: hc.NetworkMode !== 'host', privateUts: hc.UTSMode !== 'host' });
}

function verifyDevices(hc: HostConfig): void {
  for (const d of hc.Devices ?? []) {
    const perms = d?.CgroupPermissions || 'rwm';
    if (!isValidDevicePermissions(perms)) throw bad(`invalid device mode: ${perms}`);
    const inContainer = d?.PathInContainer || d?.PathOnHost || '';
    if (inContainer && !path.posix.isAbsolute(inContainer)) throw bad(`${inContainer} is not an absolute path`);
  }
  for (const rule of hc.DeviceCgroupRules ?? []) parseDeviceCgroupRule(rule);
}

/** Resources of an update: a MemorySwap without a Memory in the same update is checked against the stored limit later. */
function updateResources(hc: HostConfig): HostConfig {
  return hc.Memory ? hc : { ...hc, MemorySwap: undefined };
}

/**
 * Refuse a HostConfig dockerd would refuse (InvalidParameterError with its message). `update`
 * checks the restart policy and the resources; `create` checks everything this module knows.
 */
export function verifyHostConfig(hc: HostConfig | null | undefined, opts: HostConfigCheckOptions): void {
  if (!hc) return;
  const cpuCount = opts.cpuCount ?? availableParallelism();
  verifyRestartPolicy(hc.RestartPolicy);
  if (opts.mode === 'update') {
    validateResources(updateResources(hc), cpuCount);
    return;
  }
  const policy = hc.RestartPolicy?.Name ?? '';
  if (hc.AutoRemove && policy !== '' && policy !== 'no') throw bad("can't create 'AutoRemove' container with restart policy");
  for (const h of hc.ExtraHosts ?? []) verifyExtraHost(h);
  verifyPortBindings(hc.PortBindings);
  // names are checked with or without Privileged, as dockerd's validateCapabilities does
  parseCapabilities({ capAdd: hc.CapAdd, capDrop: hc.CapDrop, known: knownCapabilities() });
  const isolation = hc.Isolation ?? '';
  if (isolation !== '' && isolation !== 'default') throw bad(`Invalid isolation: ${JSON.stringify(isolation)} - linux only supports 'default'`);
  for (const key of Object.keys(hc.Annotations ?? {})) {
    if (key === '') throw bad('invalid Annotations: the empty string is not permitted as an annotation key');
  }
  const security = parseSecurityOpts(hc.SecurityOpt);
  if (opts.securityOptions) verifyConfinement(security, opts.securityOptions, hc.UsernsMode);
  verifyNamespaceModes(hc);
  validateResources(hc, cpuCount);
  parseUlimits(hc.Ulimits);
  verifyDevices(hc);
  verifyLogConfig(hc.LogConfig);
  verifyVolumeNames(hc);
  verifyBindSources(hc);
}

/** HostConfig numbers `docker update` changes (0 = keep). */
const UPDATABLE_NUMBERS = [
  'BlkioWeight', 'CpuShares', 'CpuPeriod', 'CpuQuota', 'CpuRealtimePeriod', 'CpuRealtimeRuntime',
  'Memory', 'MemoryReservation', 'MemorySwap', 'NanoCpus', 'KernelMemoryTCP',
] as const satisfies ReadonlyArray<keyof HostConfig>;

/**
 * `docker update` (dockerd's ContainerUpdate): the changes are checked as create checks them
 * (`verifyHostConfig`, mode update), then against the stored HostConfig `cur` (the
 * NanoCpus/CpuQuota conflicts, a Memory above the stored MemorySwap, a restart policy on an
 * AutoRemove container) with dockerd's "Cannot update container <id>: " messages. Non-zero
 * resource numbers, CpusetCpus/Mems, PidsLimit and RestartPolicy replace the stored ones.
 * Returns the new HostConfig and the `linux.resources` a running container gets.
 */
export function updatedHostConfig(id: string, cur: HostConfig, changes: HostConfig | null | undefined): { hostConfig: HostConfig; resources: OciResources | undefined } {
  const fail = (msg: string) => bad(`Cannot update container ${id}: ${msg}`);
  const c = changes ?? {};
  verifyHostConfig(c, { mode: 'update' });
  if ((c.NanoCpus ?? 0) > 0 && (cur.CpuQuota ?? 0) > 0 && !c.CpuQuota) {
    throw fail('Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set');
  }
  if ((c.CpuQuota ?? 0) > 0 && (cur.NanoCpus ?? 0) > 0 && !c.NanoCpus) {
    throw fail('Conflicting options: NanoCPUs cannot be updated as CPU Quota has already been set');
  }
  if (c.Memory && !c.MemorySwap && (cur.MemorySwap ?? 0) > 0 && c.Memory > (cur.MemorySwap ?? 0)) {
    throw fail('Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time');
  }
  const next: HostConfig = structuredClone(cur);
  for (const k of UPDATABLE_NUMBERS) {
    const v = c[k];
    if (typeof v === 'number' && v !== 0) (next as Record<string, unknown>)[k] = v;
  }
  if (c.CpusetCpus) next.CpusetCpus = c.CpusetCpus;
  if (c.CpusetMems) next.CpusetMems = c.CpusetMems;
  if (c.PidsLimit !== undefined && c.PidsLimit !== null) next.PidsLimit = c.PidsLimit;
  if (c.RestartPolicy?.Name) {
    if (cur.AutoRemove && c.RestartPolicy.Name !== 'no') throw fail('Restart policy cannot be updated because AutoRemove is enabled for the container');
    next.RestartPolicy = { Name: c.RestartPolicy.Name, MaximumRetryCount: c.RestartPolicy.MaximumRetryCount ?? 0 };
  }
  try {
    return { hostConfig: next, resources: applyOpts({ ociVersion: '1.2.0' }, [withResources(next)]).linux?.resources };
  } catch (err) {
    throw fail(errorMessage(err));
  }
}
