/**
 * Pod sandboxes, pause-less: a pod is a record on disk (`<data-root>/cri/pods/<id>.json`,
 * written atomically, so pods survive a berthd SIGKILL) plus the namespaces its containers
 * share, each kept alive by a bind-mounted nsfs file under `<exec-root>/cri/<id>/` (`unshare
 * --net=FILE --ipc=FILE --uts=FILE`, the way network-cni keeps a container's netns). No
 * process holds them: stopping the pod unmounts them, removing it deletes its record. The one
 * exception is a pod-wide PID namespace (`pid: POD`): that needs a live PID 1, pid-holder.ts.
 * The pod network is its own namespace with loopback up, put on a CNI network by pod-network.ts.
 */
import { execFile } from 'node:child_process';
import { mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { NotFoundError, atomicWriteFile, errorMessage, type Logger } from '@berth/core';
import { NamespaceMode, PodState } from './mapping.js';
import type { PidHolder, PidHolders } from './pid-holder.js';

const execFileP = promisify(execFile);

export interface PodRecord {
  id: string;
  metadata: { name: string; uid: string; namespace: string; attempt: number };
  state: number;
  /** Nanoseconds since the epoch, decimal. */
  createdAt: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  hostname: string;
  logDirectory: string;
  runtimeHandler: string;
  cgroupParent: string;
  /** NamespaceMode of network, pid and ipc (POD = shared by the pod, NODE = the host's). */
  namespaces: { network: number; pid: number; ipc: number };
  /** nsfs files of the namespaces the pod holds (absent: the host's / the container's own). */
  nsPaths: { net?: string; ipc?: string; uts?: string };
  /** PID 1 of the pod's own PID namespace (pid: POD only; pid-holder.ts), found again after a restart by its start time. */
  pidHolder?: PidHolder;
  /** The pod's IP on the CNI network (absent: loopback only, or released at stop). */
  ip?: string;
  /** PodSandboxConfig.dns_config: its containers' resolv.conf (absent: the host's, as network-basic writes it). */
  dns?: { servers: string[]; searches: string[]; options: string[] };
  /** The pod's host ports (port_mappings with a host_port), in CNI's portMappings form. */
  portMappings?: CniPortMapping[];
}

/** One entry of CNI's `portMappings` capability (what the portmap plugin takes). */
export interface CniPortMapping {
  hostPort: number;
  containerPort: number;
  protocol: 'tcp' | 'udp' | 'sctp';
  hostIP?: string;
}

const KINDS = ['net', 'ipc', 'uts'] as const;

/** How a pod's namespaces are made and kept (tests without root pass their own). */
export interface PodNamespaces {
  /** Make the pod's namespaces; returns the files that keep them. */
  create(pod: PodRecord): Promise<PodRecord['nsPaths']>;
  /** Drop them (idempotent). */
  remove(pod: PodRecord): Promise<void>;
  /** Are they still there (false after a reboot)? */
  alive(pod: PodRecord): Promise<boolean>;
}

export class PodStore {
  private readonly pods = new Map<string, PodRecord>();
  private readonly dir: string;

  constructor(
    dataRoot: string,
    private readonly logger: Logger,
    private readonly ns: PodNamespaces,
    private readonly holders: PidHolders,
  ) {
    this.dir = join(dataRoot, 'cri', 'pods');
  }

  /** Read every saved pod (a pod whose namespaces a reboot lost is shown NOTREADY). */
  async load(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    for (const f of await readdir(this.dir)) {
      if (!f.endsWith('.json')) continue;
      try {
        const pod = JSON.parse(await readFile(join(this.dir, f), 'utf8')) as PodRecord;
        if (pod.state === PodState.READY && !((await this.ns.alive(pod)) && (await this.holderAlive(pod)))) pod.state = PodState.NOTREADY;
        this.pods.set(pod.id, pod);
      } catch (err) {
        this.logger.error('could not read a pod record; skipped', { file: f, error: errorMessage(err) });
      }
    }
  }

  list(): PodRecord[] {
    return [...this.pods.values()];
  }

  /** By full ID or unique prefix. */
  get(ref: string): PodRecord {
    const exact = this.pods.get(ref);
    if (exact) return exact;
    const found = ref ? [...this.pods.values()].filter((p) => p.id.startsWith(ref)) : [];
    if (found.length !== 1) throw new NotFoundError(`pod sandbox ${JSON.stringify(ref)} not found`);
    return found[0]!;
  }

  find(ref: string): PodRecord | undefined {
    try {
      return this.get(ref);
    } catch {
      return undefined;
    }
  }

  async save(pod: PodRecord): Promise<void> {
    await atomicWriteFile(join(this.dir, `${pod.id}.json`), JSON.stringify(pod), { mode: 0o600 });
    this.pods.set(pod.id, pod);
  }

  async delete(id: string): Promise<void> {
    await rm(join(this.dir, `${id}.json`), { force: true });
    this.pods.delete(id);
  }

  /** Make the pod's namespaces (pod.nsPaths is set) and, for pid: POD, its PID namespace holder (pod.pidHolder); a failure leaves none of them. */
  async createNamespaces(pod: PodRecord): Promise<void> {
    pod.nsPaths = await this.ns.create(pod);
    if (pod.namespaces.pid !== NamespaceMode.POD) return;
    try {
      pod.pidHolder = await this.holders.start();
    } catch (err) {
      await this.ns.remove(pod).catch(() => {});
      throw err;
    }
  }

  /** Drop the pod's namespaces and stop its PID namespace holder (idempotent). */
  async removeNamespaces(pod: PodRecord): Promise<void> {
    if (pod.pidHolder) await this.holders.stop(pod.pidHolder);
    await this.ns.remove(pod);
  }

  /**
   * Ready pods whose PID namespace holder has died since (killed from inside the pod, say) become
   * NOTREADY, saved — what kubelet reads to re-create them, as when containerd's pause container died.
   */
  async markLostPidNamespaces(): Promise<void> {
    for (const pod of [...this.pods.values()]) {
      if (pod.state !== PodState.READY || !pod.pidHolder || (await this.holders.alive(pod.pidHolder))) continue;
      this.logger.warn("a pod's PID namespace holder is gone; the pod is not ready", { pod: pod.id, pid: pod.pidHolder.pid });
      await this.save({ ...pod, state: PodState.NOTREADY });
    }
  }

  /** Is the pod's PID namespace still held (true for a pod without one)? */
  async holderAlive(pod: PodRecord): Promise<boolean> {
    return !pod.pidHolder || this.holders.alive(pod.pidHolder);
  }
}

/** The host's namespaces, kept by nsfs files under `<execRoot>/cri/<pod id>/` (needs root and util-linux's unshare). */
export function hostNamespaces(execRoot: string): PodNamespaces {
  const remove = async (pod: PodRecord): Promise<void> => {
    for (const k of KINDS) {
      const p = pod.nsPaths[k];
      if (!p) continue;
      await execFileP('umount', ['-l', p]).catch(() => {});
      await rm(p, { force: true });
    }
    await rm(join(execRoot, 'cri', pod.id), { recursive: true, force: true });
  };
  return {
    async create(pod) {
      const dir = join(execRoot, 'cri', pod.id);
      await mkdir(dir, { recursive: true, mode: 0o711 });
      const paths: PodRecord['nsPaths'] = {};
      if (pod.namespaces.network !== NamespaceMode.NODE) {
        paths.net = join(dir, 'net');
        paths.uts = join(dir, 'uts');
      }
      if (pod.namespaces.ipc !== NamespaceMode.NODE) paths.ipc = join(dir, 'ipc');
      const args: string[] = [];
      for (const k of KINDS) {
        const p = paths[k];
        if (!p) continue;
        await writeFile(p, '', { flag: 'wx', mode: 0o444 }); // never reuse a path: it may hold a live namespace
        args.push(`--${k}=${p}`);
      }
      if (args.length === 0) return paths;
      // One unshare for all of them; inside, the pod's hostname and loopback (a new netns has lo down).
      const script = [paths.uts ? 'echo "$1" > /proc/sys/kernel/hostname' : ':', paths.net ? 'ip link set lo up' : ':'].join(' && ');
      try {
        await execFileP('unshare', [...args, 'sh', '-c', script, 'sh', pod.hostname || pod.metadata.name]);
      } catch (err) {
        await remove({ ...pod, nsPaths: paths }).catch(() => {});
        throw err;
      }
      return paths;
    },
    remove,
    alive: namespacesAlive,
  };
}

/** An nsfs bind mount shows the namespace file's device as the nsfs one, not its directory's. */
async function namespacesAlive(pod: PodRecord): Promise<boolean> {
  for (const p of Object.values(pod.nsPaths)) {
    if (!p) continue;
    try {
      const [f, d] = await Promise.all([stat(p), stat(join(p, '..'))]);
      if (f.dev === d.dev) return false;
    } catch {
      return false;
    }
  }
  return true;
}
