import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { InvalidParameterError, NotImplementedError, SystemError } from '../errors.js';
import type { OciDevice, OciMount, OciSpec } from '../oci.js';
import type { ContainerRecord, HostConfig } from '../types.js';
import { parseCapabilities, knownCapabilities, grantableCapabilities, withCapabilities } from './caps.js';
import { DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS, DEFAULT_SHM_SIZE, defaultSpec } from './defaults.js';
import { devicesFromMapping, hostDevices, parseDeviceCgroupRule, withDevices, type HostDevice } from './devices.js';
import { readMountInfo, type MountInfoEntry } from '../mountinfo.js';
import { checkPropagation, probeHost, type SpecHostInfo } from './host.js';
import { engineBind, parseUserMounts, toOciMount, withMounts, type ParsedMount } from './mounts.js';
import { planNamespaces, withNamespaces, type JoinPaths } from './namespaces.js';
import { applyOpts, type SpecOpt } from './opts.js';
import {
  containerEnv,
  withAnnotations,
  withCgroupsPath,
  withHostname,
  withProcess,
  withRoot,
  withSystemPaths,
} from './process.js';
import { parseUlimits, resolveBlockIODevices, validateResources, withResources, withRlimits } from './resources.js';
import { parseSecurityOpts } from './security.js';
import { defaultNetworkSysctls, validateSysctls, withSysctls } from './sysctl.js';
import { resolveUser, withUser } from './user.js';

/** Where the init binary is mounted in the container when HostConfig.Init is set (dockerd's path). */
export const INIT_PATH_IN_CONTAINER = '/sbin/docker-init';

/** HostConfig.Init, or the daemon's default (daemon.json "init") when the container leaves it unset. */
export function wantsInit(hc: HostConfig, defaultInit = false): boolean {
  return hc.Init ?? defaultInit;
}

/** The engine checks the init binary at each start that needs it: a clear error naming it (the builder only names it). */
export async function checkInitBinary(initPath: string): Promise<void> {
  await stat(initPath).catch((err: unknown) => {
    throw new SystemError(`--init: the init binary (docker-init) ${initPath} was not found: ${(err as Error).message}`, { cause: err });
  });
}

/** Default cgroup parent (cgroupfs driver); dockerd uses /docker. */
export const DEFAULT_CGROUP_PARENT = '/berth';

export interface SpecBuildInput {
  container: ContainerRecord;
  /** Host path of the container's root filesystem (mounted by beforeMount taps). */
  rootfsPath: string;
  /** Files prepared by the networking step, bind-mounted at /etc/hosts, /etc/resolv.conf, /etc/hostname. */
  hostsPath?: string;
  resolvConfPath?: string;
  hostnamePath?: string;
  /** undefined = new netns, null = host network, string = join this netns path. */
  networkNamespacePath?: string | null;
  /** The daemon runs with --experimental. No spec field depends on it yet. */
  experimental?: boolean;
  /** IpcMode shareable or container:<id>: the engine-managed /dev/shm directory to bind. */
  shmPath?: string;
  /** HostConfig.Init: the init binary on the host (e.g. /usr/bin/tini-static); checked at each start. */
  initPath?: string;
  /** daemon.json "init": run under the init when HostConfig.Init is unset (null); Init=false still opts out. */
  defaultInit?: boolean;
  /**
   * Mounts a volume plugin contributed (StartContext.mounts): binds added like the user's own;
   * each Binds/Mounts volume entry must have one at its destination.
   */
  contributedMounts?: readonly OciMount[];
  /** Legacy links' variables (dockerd's linkedEnv): after PATH/HOSTNAME/TERM, before Config.Env, which wins. */
  linkEnv?: readonly string[];
  /** Namespace paths to join for container:<id> Pid/Ipc/UTS modes. */
  namespacePaths?: JoinPaths;
  /** cgroupfs (default): cgroupsPath = parent/id; systemd: "parent.slice:berth:id". */
  cgroupDriver?: 'cgroupfs' | 'systemd';
  /** Cgroup parent when HostConfig.CgroupParent is empty (default /berth, or system.slice with systemd). */
  defaultCgroupParent?: string;
  /** Host facts; probed from /proc and /sys when missing. */
  host?: Partial<SpecHostInfo>;
  /** Where host devices are listed for privileged containers (default /dev; tests only). */
  devRoot?: string;
}

function cgroupsPathOf(id: string, hc: HostConfig, input: SpecBuildInput): string {
  const parent = hc.CgroupParent ?? '';
  if (input.cgroupDriver === 'systemd') {
    const slice = parent || input.defaultCgroupParent || 'system.slice';
    if (!slice.endsWith('.slice') || slice.includes('/')) {
      throw new InvalidParameterError('cgroup-parent for systemd cgroup should be a valid slice named as "xxx.slice"');
    }
    return `${slice}:berth:${id}`;
  }
  return path.posix.join(parent || input.defaultCgroupParent || DEFAULT_CGROUP_PARENT, id);
}

async function prepareBindSource(m: ParsedMount): Promise<void> {
  if (m.type !== 'bind') return;
  try {
    await stat(m.source);
    return;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (!m.createSource) {
    throw new InvalidParameterError(`invalid mount config for type "bind": bind source path does not exist: ${m.source}`);
  }
  // dockerd creates a missing -v source as a directory (legacy behaviour kept for compatibility)
  await mkdir(m.source, { recursive: true, mode: 0o755 });
}

/**
 * Builds the OCI runtime spec of a container from its Config and HostConfig, the way
 * dockerd's createSpec does (see ../../test/spec/fixtures/README.md for the reference
 * specs it is compared with). Seccomp, AppArmor, SELinux labels, user-namespace mappings
 * and OCI hooks are left to the plugins that tap `specBuild` after this builder.
 *
 * Everything the spec depends on that needs I/O (users in the rootfs, device nodes, bind
 * sources, host mount propagation, host facts) is gathered and validated first; then the
 * spec is made by pure opts applied to `defaultSpec()`. Errors are typed:
 * InvalidParameterError for bad Config/HostConfig values (dockerd's messages),
 * NotImplementedError for what berth does not support yet (container:<id> modes without a
 * path, Init without an init binary). Volumes come resolved, as `contributedMounts`.
 */
export async function buildOciSpec(input: SpecBuildInput): Promise<OciSpec> {
  const c = input.container;
  const rootfsPath = input.rootfsPath || c.BaseFS;
  if (!rootfsPath) throw new SystemError(`no root filesystem for container ${c.ID}: no beforeMount tap set one`);
  input = { ...input, rootfsPath };
  const hc: HostConfig = c.HostConfig ?? {};
  const cfg = c.Config ?? {};
  const privileged = hc.Privileged === true;

  const need = input.host ?? {};
  const host: SpecHostInfo =
    need.capLastCap !== undefined && need.cgroupV2 !== undefined && need.cpuCount !== undefined
      ? (need as SpecHostInfo)
      : { ...(await probeHost()), ...need };

  // ---- validate everything that needs no I/O ----
  const security = parseSecurityOpts(hc.SecurityOpt);
  const plan = planNamespaces(hc, { networkNamespacePath: input.networkNamespacePath, join: input.namespacePaths, cgroupV2: host.cgroupV2 });
  const known = knownCapabilities(host.capLastCap);
  const caps = parseCapabilities({
    capAdd: hc.CapAdd,
    capDrop: hc.CapDrop,
    privileged,
    known,
    grantable: grantableCapabilities(known, host.capBounding),
  });
  validateResources(hc, host.cpuCount);
  const rlimits = parseUlimits(hc.Ulimits);
  const privateUts = plan.uts !== 'host';
  validateSysctls(hc.Sysctls, { privateIpc: plan.ipc !== 'host', privateNetwork: plan.network !== 'host', privateUts });
  const cgroupRules = (hc.DeviceCgroupRules ?? []).map(parseDeviceCgroupRule);
  const contributed = input.contributedMounts ?? [];
  const userMounts = parseUserMounts(hc).filter((m) => {
    if (m.type !== 'volume') return true;
    if (!contributed.some((c) => c.destination === m.destination)) {
      throw new SystemError(`volume ${m.source ? `"${m.source}"` : '(anonymous)'} at ${m.destination} was not mounted by a volume plugin`);
    }
    return false;
  });
  const cgroupsPath = cgroupsPathOf(c.ID, hc, input);

  if (!c.Path) throw new InvalidParameterError('No command specified');
  let args = [c.Path, ...(c.Args ?? [])];
  const cwd = cfg.WorkingDir || '/';
  if (!path.posix.isAbsolute(cwd)) {
    throw new InvalidParameterError(`the working directory '${cwd}' is invalid, it needs to be an absolute path`);
  }
  if ((hc.ShmSize ?? 0) < 0) throw new InvalidParameterError('SHM size can not be less than 0');
  if ((hc.DeviceRequests ?? []).length > 0) {
    throw new NotImplementedError('HostConfig.DeviceRequests (--gpus) is not supported: no device driver is registered');
  }

  const initMounts: OciMount[] = [];
  if (wantsInit(hc, input.defaultInit)) {
    if (!input.initPath) {
      throw new SystemError('--init: no init binary (docker-init) was found on this host: install tini-static or set --init-path / daemon.json "init-path"');
    }
    initMounts.push({ destination: INIT_PATH_IN_CONTAINER, type: 'bind', source: input.initPath, options: ['bind', 'ro'] });
    args = [INIT_PATH_IN_CONTAINER, '--', ...args];
  }

  const ipcMode = hc.IpcMode ?? '';
  let ipcMount: OciMount | undefined;
  if (ipcMode === 'host') ipcMount = engineBind('/dev/shm', '/dev/shm');
  else if (ipcMode.startsWith('container:')) {
    if (!input.shmPath) throw new NotImplementedError(`IpcMode "${ipcMode}" needs the other container's /dev/shm, which this engine does not provide yet`);
    ipcMount = engineBind(input.shmPath, '/dev/shm');
  } else if (ipcMode === 'shareable' && input.shmPath) ipcMount = engineBind(input.shmPath, '/dev/shm');

  // ---- gather (I/O) ----
  const user = await resolveUser(input.rootfsPath, cfg.User, hc.GroupAdd ?? []);

  for (const m of userMounts) await prepareBindSource(m);
  if (userMounts.some((m) => m.type === 'bind' && ['shared', 'rshared', 'slave', 'rslave'].includes(m.propagation))) {
    const info: MountInfoEntry[] = await readMountInfo();
    for (const m of userMounts) {
      if (m.type !== 'bind') continue;
      const problem = checkPropagation(m.source, m.propagation, info);
      if (problem) throw new InvalidParameterError(problem);
    }
  }

  const blockIO = await resolveBlockIODevices(hc);
  let devices: HostDevice[] = [];
  let allHostDevices: OciDevice[] = [];
  if (privileged) allHostDevices = await hostDevices(input.devRoot ?? '/dev');
  else for (const d of hc.Devices ?? []) devices = devices.concat(await devicesFromMapping(d));

  // ---- mounts the engine prepared ----
  const userDest = new Set([...userMounts, ...contributed].map((m) => m.destination));
  const networkMounts: OciMount[] = [];
  const ro = hc.ReadonlyRootfs === true;
  for (const [src, dest] of [
    [input.resolvConfPath, '/etc/resolv.conf'],
    [input.hostnamePath, '/etc/hostname'],
    [input.hostsPath, '/etc/hosts'],
  ] as const) {
    if (src && !userDest.has(dest)) networkMounts.push(engineBind(src, dest, ro));
  }
  const containerMounts = [...userMounts.map(toOciMount), ...contributed, ...networkMounts, ...(ipcMount && !userDest.has('/dev/shm') ? [ipcMount] : [])];

  // ---- sysctls ----
  const sysctls: Record<string, string> = {};
  // dockerd's defaults for a network namespace of the container's own (not the host's, not
  // another container's, whose settings are that container's business)
  if (plan.network !== 'host' && !(hc.NetworkMode ?? '').startsWith('container:')) Object.assign(sysctls, defaultNetworkSysctls());
  if (privateUts && cfg.Domainname) sysctls['kernel.domainname'] = cfg.Domainname;
  Object.assign(sysctls, hc.Sysctls ?? {});

  const hostname = cfg.Hostname || c.ID.slice(0, 12);
  const noSystemPaths = privileged || security.unconfinedSystemPaths;
  const consoleSize = hc.ConsoleSize && (hc.ConsoleSize[0] > 0 || hc.ConsoleSize[1] > 0) ? { height: hc.ConsoleSize[0], width: hc.ConsoleSize[1] } : undefined;

  const opts: SpecOpt[] = [
    withRoot(input.rootfsPath, ro),
    withHostname(privateUts ? hostname : undefined),
    withUser(user),
    withProcess({
      args,
      env: containerEnv({ env: cfg.Env, hostname, tty: cfg.Tty, ...(input.linkEnv ? { linkEnv: input.linkEnv } : {}) }),
      cwd,
      terminal: cfg.Tty === true,
      consoleSize: cfg.Tty ? consoleSize : undefined,
      oomScoreAdj: hc.OomScoreAdj ?? 0,
      noNewPrivileges: security.noNewPrivileges,
    }),
    withCapabilities(caps),
    withRlimits(rlimits),
    ...withNamespaces(plan),
    withMounts({
      containerMounts,
      extraDefaultMounts: initMounts,
      readonlyRootfs: ro,
      privileged,
      dropDefaultShm: ipcMode === 'none',
      shmSize: hc.ShmSize || DEFAULT_SHM_SIZE,
      writableCgroups: security.writableCgroups,
    }),
    withDevices({ privileged, devices, cgroupRules, hostDevices: allHostDevices }),
    withResources(hc, host.cpuCount, { cgroupV2: host.cgroupV2, blockIO }),
    withSysctls(sysctls),
    withSystemPaths(
      noSystemPaths ? [] : (hc.MaskedPaths ?? DEFAULT_MASKED_PATHS),
      noSystemPaths ? [] : (hc.ReadonlyPaths ?? DEFAULT_READONLY_PATHS),
    ),
    withCgroupsPath(cgroupsPath),
    withAnnotations(hc.Annotations),
  ];
  return applyOpts(defaultSpec(), opts);
}
