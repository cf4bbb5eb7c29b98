/**
 * CRI RuntimeService on berth's engine: pods (pods.ts) and their containers (engine containers,
 * mapping.ts), exec, streams (Exec/Attach/PortForward URLs), stats, events, checkpoints (checkpoint.ts). Each handler takes the decoded request and returns the
 * response object; server.ts turns thrown berth errors into gRPC statuses.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import {
  ConflictError,
  InvalidParameterError,
  NotFoundError,
  NotImplementedError,
  isActive,
  type ContainerRecord,
  type DeepReadonly,
  type DockerEvent,
  type Engine,
} from '@berth/core';
import {
  ContainerState,
  LABEL,
  NamespaceMode,
  PodState,
  containerOf,
  containerStatusOf,
  createOptionsOf,
  dnsOf,
  isCriContainer,
  labelsOf,
  matchesSelector,
  portMappingsOf,
  resourcesOf,
  type Msg,
} from './mapping.js';
import type { PodRecord, PodStore } from './pods.js';
import { checkpointToArchive } from './checkpoint.js';
import type { ImageServiceImpl } from './image-service.js';
import type { PodNetwork } from './pod-network.js';
import { validPorts } from './portforward.js';
import type { StreamingServer } from './streaming.js';

export const RUNTIME_NAME = 'berth';

/** CPU time (ns) and memory (bytes; working set = usage less inactive file pages) of a process's cgroup. */
export type ProcessStats = (pid: number) => Promise<{ cpuNs?: number; memory?: number; workingSet?: number }>;
export const RUNTIME_API_VERSION = 'v1';

export class RuntimeServiceImpl {
  constructor(
    private readonly engine: () => Engine,
    private readonly pods: PodStore,
    private readonly images: ImageServiceImpl,
    private readonly version: string,
    /** CPU and memory of a container's process (berthd passes its /containers/{id}/stats sampler); absent: no numbers. */
    private readonly stats?: ProcessStats,
    /** The pods' CNI network (absent: pods have loopback only and NetworkReady is false). */
    private readonly network?: PodNetwork,
    /** Exec/Attach URLs (streaming.ts; absent: those calls are UNIMPLEMENTED). */
    private readonly streaming?: StreamingServer,
  ) {}

  private async networkReady(): Promise<{ ok: true } | { ok: false; reason: string }> {
    return this.network ? this.network.ready() : { ok: false, reason: 'no pod network configured' };
  }

  // ---- runtime ----

  Version(): Msg {
    return { version: '0.1.0', runtime_name: RUNTIME_NAME, runtime_version: this.version, runtime_api_version: RUNTIME_API_VERSION };
  }

  async Status(req: Msg): Promise<Msg> {
    const e = this.engine();
    const net = await this.networkReady();
    const handlers = e.runtimes().map((r) => ({ name: r.name === e.config.defaultRuntime ? '' : r.name, features: { recursive_read_only_mounts: false, user_namespaces: false } }));
    return {
      status: {
        conditions: [
          { type: 'RuntimeReady', status: true, reason: '', message: '' },
          // Pods are put on the CNI network (pod-network.ts) only when it is usable.
          net.ok ? { type: 'NetworkReady', status: true, reason: '', message: '' } : { type: 'NetworkReady', status: false, reason: 'NetworkPluginNotReady', message: net.reason },
        ],
      },
      info: req.verbose ? { config: JSON.stringify({ dataRoot: e.config.dataRoot, defaultRuntime: e.config.defaultRuntime, cgroupDriver: e.config.cgroupDriver }) } : {},
      runtime_handlers: [{ name: '', features: {} }, ...handlers.filter((h) => h.name)],
    };
  }

  RuntimeConfig(): Msg {
    return { linux: { cgroup_driver: this.engine().config.cgroupDriver === 'systemd' ? 0 : 1 } };
  }

  UpdateRuntimeConfig(): Msg {
    // kubelet sends the pod CIDR here; the pod network's subnet is berth's config (podSubnet) or its conflist's.
    return {};
  }

  // ---- pods ----

  async RunPodSandbox(req: Msg): Promise<Msg> {
    const cfg: Msg = req.config ?? {};
    const meta: Msg = cfg.metadata ?? {};
    if (!meta.name || !meta.uid || !meta.namespace) throw new InvalidParameterError('pod sandbox metadata needs name, uid and namespace');
    const handler = String(req.runtime_handler ?? '');
    if (handler && !this.engine().runtimes().some((r) => r.name === handler)) throw new NotFoundError(`no runtime handler ${JSON.stringify(handler)}`);
    const same = this.pods.list().find((p) => p.metadata.uid === meta.uid && p.metadata.name === meta.name && p.metadata.namespace === meta.namespace && p.metadata.attempt === (meta.attempt ?? 0));
    if (same) throw new ConflictError(`pod sandbox ${meta.name} (attempt ${meta.attempt ?? 0}) exists already: ${same.id}`);
    const nsOpt: Msg = cfg.linux?.security_context?.namespace_options ?? {};
    let portMappings: ReturnType<typeof portMappingsOf>;
    try {
      portMappings = portMappingsOf(cfg.port_mappings);
    } catch (err) {
      throw new InvalidParameterError((err as Error).message);
    }
    const dns = dnsOf(cfg.dns_config);
    const pod: PodRecord = {
      id: randomBytes(32).toString('hex'),
      metadata: { name: meta.name, uid: meta.uid, namespace: meta.namespace, attempt: meta.attempt ?? 0 },
      state: PodState.READY,
      createdAt: (BigInt(Date.now()) * 1_000_000n).toString(),
      labels: { ...(cfg.labels ?? {}) },
      annotations: { ...(cfg.annotations ?? {}) },
      hostname: cfg.hostname ?? '',
      logDirectory: cfg.log_directory ?? '',
      runtimeHandler: handler,
      cgroupParent: cfg.linux?.cgroup_parent ?? '',
      namespaces: { network: nsOpt.network ?? NamespaceMode.POD, pid: nsOpt.pid ?? NamespaceMode.CONTAINER, ipc: nsOpt.ipc ?? NamespaceMode.POD },
      nsPaths: {},
      ...(dns ? { dns } : {}),
      // host ports of a host-network pod are the host's own: nothing to map
      ...(portMappings.length && nsOpt.network !== NamespaceMode.NODE ? { portMappings } : {}),
    };
    await this.pods.createNamespaces(pod);
    try {
      // A pod of its own network namespace goes on the CNI network when that is usable (else loopback only).
      if (pod.nsPaths.net && this.network && (await this.networkReady()).ok) {
        pod.ip = await this.network.attach(pod.id, pod.nsPaths.net, pod.metadata, pod.portMappings ?? []);
      }
      await this.pods.save(pod);
    } catch (err) {
      await this.releaseNetwork(pod).catch(() => {});
      await this.pods.removeNamespaces(pod);
      throw err;
    }
    return { pod_sandbox_id: pod.id };
  }

  private podContainers(podId: string): DeepReadonly<ContainerRecord>[] {
    return this.engine()
      .containers.list()
      .filter((c) => isCriContainer(c) && c.Config.Labels?.[LABEL.sandboxId] === podId);
  }

  /** Give back the pod's address (a DEL from the CNI result cache: idempotent, also after a restart). */
  private async releaseNetwork(pod: PodRecord): Promise<void> {
    if (pod.namespaces.network !== NamespaceMode.NODE) await this.network?.detach(pod.id);
  }

  async StopPodSandbox(req: Msg): Promise<Msg> {
    const pod = this.pods.find(req.pod_sandbox_id);
    if (!pod) return {}; // stopping a pod that is gone is not an error (kubelet retries)
    for (const c of this.podContainers(pod.id)) if (isActive(c as ContainerRecord)) await this.engine().containers.stop(c.ID, { timeout: 0 });
    await this.releaseNetwork(pod);
    await this.pods.removeNamespaces(pod);
    const { ip: _released, pidHolder: _killed, ...stopped } = pod;
    await this.pods.save({ ...stopped, state: PodState.NOTREADY });
    return {};
  }

  async RemovePodSandbox(req: Msg): Promise<Msg> {
    const pod = this.pods.find(req.pod_sandbox_id);
    if (!pod) return {};
    for (const c of this.podContainers(pod.id)) await this.engine().containers.remove(c.ID, { force: true });
    await this.releaseNetwork(pod);
    await this.pods.removeNamespaces(pod);
    await this.pods.delete(pod.id);
    return {};
  }

  private podStatus(pod: PodRecord): Msg {
    return {
      id: pod.id,
      metadata: pod.metadata,
      state: pod.state,
      created_at: pod.createdAt,
      network: { ip: pod.ip ?? '', additional_ips: [] },
      linux: { namespaces: { options: pod.namespaces } },
      labels: pod.labels,
      annotations: pod.annotations,
      runtime_handler: pod.runtimeHandler,
    };
  }

  async PodSandboxStatus(req: Msg): Promise<Msg> {
    await this.pods.markLostPidNamespaces();
    const pod = this.pods.get(req.pod_sandbox_id);
    const status = this.podStatus(pod);
    const containers = req.verbose ? this.podContainers(pod.id).map(containerStatusOf) : [];
    return {
      status,
      info: req.verbose ? { info: JSON.stringify({ namespaces: pod.nsPaths, ...(pod.pidHolder ? { pidHolder: pod.pidHolder } : {}), hostname: pod.hostname, logDirectory: pod.logDirectory }) } : {},
      containers_statuses: containers,
      timestamp: (BigInt(Date.now()) * 1_000_000n).toString(),
    };
  }

  async ListPodSandbox(req: Msg): Promise<Msg> {
    await this.pods.markLostPidNamespaces();
    const f: Msg = req.filter ?? {};
    const items = this.pods
      .list()
      .filter((p) => !f.id || p.id === f.id || p.id.startsWith(f.id))
      .filter((p) => !f.state || p.state === f.state.state)
      .filter((p) => matchesSelector(p.labels, f.label_selector))
      .map((p) => ({ id: p.id, metadata: p.metadata, state: p.state, created_at: p.createdAt, labels: p.labels, annotations: p.annotations, runtime_handler: p.runtimeHandler }));
    return { items };
  }

  // ---- containers ----

  async CreateContainer(req: Msg): Promise<Msg> {
    const pod = this.pods.get(req.pod_sandbox_id);
    if (pod.state !== PodState.READY) throw new ConflictError(`pod sandbox ${pod.id} is not ready`);
    const config: Msg = req.config ?? {};
    const nsOpt: Msg | undefined = config.linux?.security_context?.namespace_options;
    if (nsOpt?.pid === NamespaceMode.TARGET && nsOpt.target_id) {
      // The target of a TARGET PID namespace is a container of the same pod.
      const e = this.engine();
      const target = e.containers.has(String(nsOpt.target_id)) ? e.containers.get(String(nsOpt.target_id)) : undefined;
      if (!target || !isCriContainer(target) || target.Config.Labels?.[LABEL.sandboxId] !== pod.id) throw new InvalidParameterError(`target container ${JSON.stringify(nsOpt.target_id)} is not a container of pod sandbox ${pod.id}`);
    }
    const image = await this.images.resolveForCreate(config.image?.image ?? '');
    const logPath = pod.logDirectory && config.log_path ? join(pod.logDirectory, config.log_path) : '';
    const opts = createOptionsOf(pod, config, { image, logPath, runtime: pod.runtimeHandler, readFile: (p) => readFileSync(p, 'utf8') });
    const { Id } = await this.engine().containers.create(opts);
    return { container_id: Id };
  }

  private criContainer(id: string): DeepReadonly<ContainerRecord> {
    const rec = this.engine().containers.get(id);
    if (!isCriContainer(rec)) throw new NotFoundError(`container ${id} is not a CRI container`);
    return rec;
  }

  async StartContainer(req: Msg): Promise<Msg> {
    const rec = this.criContainer(req.container_id);
    const pod = this.pods.get(rec.Config.Labels![LABEL.sandboxId]!);
    if (pod.state !== PodState.READY) throw new ConflictError(`pod sandbox ${pod.id} is not ready`);
    await this.engine().containers.start(rec.ID);
    return {};
  }

  async StopContainer(req: Msg): Promise<Msg> {
    const rec = this.criContainer(req.container_id);
    if (isActive(rec as ContainerRecord)) await this.engine().containers.stop(rec.ID, { timeout: Number(req.timeout ?? 0) });
    return {};
  }

  async RemoveContainer(req: Msg): Promise<Msg> {
    let rec: DeepReadonly<ContainerRecord>;
    try {
      rec = this.criContainer(req.container_id);
    } catch (err) {
      if (err instanceof NotFoundError) return {}; // already gone: not an error for CRI
      throw err;
    }
    await this.engine().containers.remove(rec.ID, { force: true });
    return {};
  }

  ListContainers(req: Msg): Msg {
    const f: Msg = req.filter ?? {};
    const containers = this.engine()
      .containers.list()
      .filter(isCriContainer)
      .map(containerOf)
      .filter((c) => !f.id || c.id === f.id || String(c.id).startsWith(f.id))
      .filter((c) => !f.pod_sandbox_id || c.pod_sandbox_id === f.pod_sandbox_id || String(c.pod_sandbox_id).startsWith(f.pod_sandbox_id))
      .filter((c) => !f.state || c.state === f.state.state)
      .filter((c) => matchesSelector(c.labels as Record<string, string>, f.label_selector));
    return { containers };
  }

  ContainerStatus(req: Msg): Msg {
    const rec = this.criContainer(req.container_id);
    const info = req.verbose ? { info: JSON.stringify({ pid: rec.State.Pid, runtime: rec.RuntimeName ?? rec.HostConfig.Runtime, sandboxID: rec.Config.Labels?.[LABEL.sandboxId], config: rec.Config, hostConfig: rec.HostConfig }) } : {};
    return { status: containerStatusOf(rec), info };
  }

  async UpdateContainerResources(req: Msg): Promise<Msg> {
    const rec = this.criContainer(req.container_id);
    await this.engine().containers.update(rec.ID, resourcesOf(req.linux));
    return {};
  }

  /** Kubelet's forensic checkpoint: an archive at `location`, the container left running (checkpoint.ts). */
  async CheckpointContainer(req: Msg): Promise<Msg> {
    const rec = this.criContainer(req.container_id);
    await checkpointToArchive(this.engine(), rec, req.location, Number(req.timeout ?? 0));
    return {};
  }

  ReopenContainerLog(req: Msg): Msg {
    const rec = this.criContainer(req.container_id);
    if (rec.State.Status !== 'running') throw new ConflictError(`container ${rec.ID} is not running`);
    // The CRI log copy is opened for each append (runtime-oci's log pump): after kubelet renamed
    // the file, the next lines make a new one; nothing to reopen.
    return {};
  }

  async ExecSync(req: Msg): Promise<Msg> {
    const rec = this.criContainer(req.container_id);
    if (!req.cmd?.length) throw new InvalidParameterError('exec needs a command');
    const e = this.engine();
    const { Id } = await e.execs.create(rec.ID, { Cmd: req.cmd, AttachStdout: true, AttachStderr: true });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const sink = (into: Buffer[]) =>
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          into.push(Buffer.from(chunk));
          cb();
        },
      });
    const session = await e.execs.start(Id, { streams: { stdout: sink(out), stderr: sink(err) } });
    const timeoutS = Number(req.timeout ?? 0);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      if (timeoutS > 0) timer = setTimeout(() => resolve('timeout'), timeoutS * 1000);
    });
    const code = await Promise.race([session.exited, timedOut]);
    clearTimeout(timer);
    if (code === 'timeout') {
      await session.kill?.(9);
      throw new DeadlineError(`command ${JSON.stringify(req.cmd)} timed out after ${timeoutS}s`);
    }
    return { stdout: Buffer.concat(out), stderr: Buffer.concat(err), exit_code: code };
  }

  /** The container for a stream: CRI's, running; stdout or stderr or stdin asked; not tty with stderr. */
  private streamTarget(req: Msg): string {
    if (!this.streaming) throw new NotImplementedError('the CRI streaming server is not running');
    const rec = this.criContainer(req.container_id);
    if (!rec.State.Running) throw new ConflictError(`container ${rec.ID} is not running`);
    if (!req.stdin && !req.stdout && !req.stderr) throw new InvalidParameterError('one of stdin, stdout and stderr must be true');
    if (req.tty && req.stderr) throw new InvalidParameterError('tty and stderr cannot both be true');
    return rec.ID;
  }

  Exec(req: Msg): Msg {
    const containerId = this.streamTarget(req);
    if (!req.cmd?.length) throw new InvalidParameterError('exec needs a command');
    return { url: this.streaming!.url({ kind: 'exec', containerId, cmd: req.cmd, tty: !!req.tty, stdin: !!req.stdin, stdout: !!req.stdout, stderr: !!req.stderr }) };
  }

  Attach(req: Msg): Msg {
    const containerId = this.streamTarget(req);
    return { url: this.streaming!.url({ kind: 'attach', containerId, tty: !!req.tty, stdin: !!req.stdin, stdout: !!req.stdout, stderr: !!req.stderr }) };
  }

  /** A URL forwarding to ports of the pod's network namespace (portforward.ts); ports may also come in the URL's query. */
  PortForward(req: Msg): Msg {
    if (!this.streaming) throw new NotImplementedError('the CRI streaming server is not running');
    const pod = this.pods.get(req.pod_sandbox_id);
    if (pod.state !== PodState.READY) throw new ConflictError(`pod sandbox ${pod.id} is not ready`);
    const ports = ((req.port ?? []) as unknown[]).map(Number);
    if (ports.length && !validPorts(ports)) throw new InvalidParameterError(`invalid ports ${JSON.stringify(req.port)}: 1 to 65535`);
    return { url: this.streaming.url({ kind: 'portforward', podId: pod.id, ...(pod.nsPaths.net ? { netns: pod.nsPaths.net } : {}), ports }) };
  }

  // ---- stats ----

  private async statsOf(rec: DeepReadonly<ContainerRecord>): Promise<Msg> {
    const now = (BigInt(Date.now()) * 1_000_000n).toString();
    const { labels, annotations } = labelsOf(rec);
    const cg = rec.State.Pid && this.stats ? await this.stats(rec.State.Pid).catch(() => undefined) : undefined;
    return {
      attributes: { id: rec.ID, metadata: containerOf(rec).metadata, labels, annotations },
      cpu: { timestamp: now, ...(cg?.cpuNs !== undefined ? { usage_core_nano_seconds: { value: String(cg.cpuNs) } } : {}) },
      memory: {
        timestamp: now,
        ...(cg?.memory !== undefined ? { usage_bytes: { value: String(cg.memory) }, working_set_bytes: { value: String(cg.workingSet ?? cg.memory) } } : {}),
      },
      writable_layer: { timestamp: now, fs_id: { mountpoint: this.engine().config.dataRoot } },
    };
  }

  async ContainerStats(req: Msg): Promise<Msg> {
    return { stats: await this.statsOf(this.criContainer(req.container_id)) };
  }

  async ListContainerStats(req: Msg): Promise<Msg> {
    const { containers } = this.ListContainers({ filter: req.filter ?? {} });
    const stats = await Promise.all((containers as Msg[]).filter((c) => c.state === ContainerState.RUNNING).map((c) => this.statsOf(this.engine().containers.get(c.id))));
    return { stats };
  }

  private async podStats(pod: PodRecord): Promise<Msg> {
    const containers = await Promise.all(this.podContainers(pod.id).filter((c) => c.State.Running).map((c) => this.statsOf(c)));
    return {
      attributes: { id: pod.id, metadata: pod.metadata, labels: pod.labels, annotations: pod.annotations },
      linux: { containers },
    };
  }

  async PodSandboxStats(req: Msg): Promise<Msg> {
    return { stats: await this.podStats(this.pods.get(req.pod_sandbox_id)) };
  }

  async ListPodSandboxStats(req: Msg): Promise<Msg> {
    const f: Msg = req.filter ?? {};
    const pods = this.pods.list().filter((p) => (!f.id || p.id.startsWith(f.id)) && matchesSelector(p.labels, f.label_selector));
    return { stats: await Promise.all(pods.map((p) => this.podStats(p))) };
  }

  // ---- events ----

  /** CRI container events from the engine's event bus; returns the unsubscribe function. */
  containerEvents(send: (ev: Msg) => void): () => void {
    const e = this.engine();
    const types: Record<string, number> = { create: 0, start: 1, die: 2, destroy: 3 };
    return e.events.subscribe((ev: DockerEvent) => {
      if (ev.Type !== 'container' || !(ev.Action in types)) return;
      const sandbox = ev.Actor.Attributes[LABEL.sandboxId];
      if (!sandbox || ev.Actor.Attributes[LABEL.type] !== 'container') return;
      const pod = this.pods.find(sandbox);
      let statuses: Msg[] = [];
      if (ev.Action !== 'destroy' && e.containers.has(ev.Actor.ID)) statuses = [containerStatusOf(e.containers.get(ev.Actor.ID))];
      send({
        container_id: ev.Actor.ID,
        container_event_type: types[ev.Action],
        created_at: ev.timeNano.toString(),
        ...(pod ? { pod_sandbox_status: this.podStatus(pod) } : {}),
        containers_statuses: statuses,
      });
    });
  }
}

/** A deadline ran out (gRPC DEADLINE_EXCEEDED). */
export class DeadlineError extends Error {}
