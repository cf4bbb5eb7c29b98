/**
 * What the CRI e2e files (cri-conformance, cri-streaming, cri-checkpoint) share: why they
 * skip, the gRPC codes and CRI states they look for, critest-like pod/container configs, a
 * polling wait, and useCriBerthd() — one berthd with the cri plugin turned on in daemon.json,
 * its pods on the file's own CNI bridge and subnet (testNetworks()), started in the describe block's beforeAll
 * and, in its afterAll, its pods removed, berthd cleaned up, the bridge deleted and ip_forward
 * put back (also when a test failed). Call useCriBerthd inside the describe, so that a skipped
 * block starts nothing.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { connectCri, type CriCall, type CriClient } from '@berth/plugin-cri';
import { FAKE_RUNTIME } from '../runtime-helpers.js';
import { TEST_IMAGE, berthdSkipReason, removeTestImageTarball, startBerthd, which, type Berthd } from './berthd.js';
import { releaseTestNetworks, saveHostNetworkState, type HostNetworkState, type TestNet } from './network-host.js';

/** Why a CRI e2e file cannot run at all (null: it can). */
export const criSkip = berthdSkipReason() ?? (which('unshare') && which('ip') ? null : 'unshare (util-linux) or ip (iproute2) missing');

// gRPC status codes the tests look for.
export const NOT_FOUND = 5;
export const FAILED_PRECONDITION = 9;
export const DEADLINE_EXCEEDED = 4;
export const UNKNOWN = 2;
export const INVALID_ARGUMENT = 3;

/** Where the pods' CNI plugins are looked for (containernetworking-plugins). */
export const CNI_BIN_DIRS = ['/usr/lib/cni', '/opt/cni/bin'];
/** Why pods get no network (the CNI plugins are missing; null: they get one). */
export const cniSkip = ['bridge', 'host-local'].every((t) => CNI_BIN_DIRS.some((dir) => fs.existsSync(path.join(dir, t))))
  ? null
  : `the CNI plugins bridge and host-local are not in ${CNI_BIN_DIRS.join(':')} (apt-get install containernetworking-plugins)`;

export const CONTAINER = { CREATED: 0, RUNNING: 1, EXITED: 2 };
export const SANDBOX = { READY: 0, NOTREADY: 1 };

let seq = 0;
export function podConfig(name: string, extra: Record<string, unknown> = {}) {
  seq++;
  return {
    metadata: { name, uid: `uid-${name}-${seq}`, namespace: 'critest', attempt: 0 },
    hostname: `${name}-host`,
    labels: { suite: 'conformance', pod: name },
    annotations: { 'critest.io/a': 'b' },
    ...extra,
  };
}

export function containerConfig(name: string, args: string[] = ['sleep', '3600'], extra: Record<string, unknown> = {}) {
  return { metadata: { name, attempt: 0 }, image: { image: TEST_IMAGE }, args, labels: { ctr: name }, annotations: { note: name }, ...extra };
}

/**
 * berthd's arguments: the CRI from daemon.json; --experimental (checkpoints, as docker
 * checkpoint) and the fake OCI runtime CLI as runtime `fake` (a RuntimeClass handler that
 * checkpoints without CRIU) for CheckpointContainer.
 */
const berthdArgs = (configFile: string) => ['--config-file', configFile, '--bridge', 'none', '--experimental', '--add-runtime', `fake=${FAKE_RUNTIME}`];

export async function waitFor<T>(what: string, get: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await get();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`${what}: never matched; last ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface Pod {
  id: string;
  config: Record<string, unknown>;
}

/** The running berthd and its CRI client (current after restart()) and the calls the tests make. */
export interface CriBerthd {
  readonly d: Berthd;
  readonly cri: CriClient;
  readonly socket: string;
  rt: CriCall;
  im: CriCall;
  runPod(name: string, extra?: Record<string, unknown>): Promise<Pod>;
  startContainer(pod: Pod, name: string, args?: string[], extra?: Record<string, unknown>): Promise<string>;
  exec(id: string, cmd: string[], timeout?: number): Promise<{ stdout: string; stderr: string; exit_code: number }>;
  /** Kill berthd with SIGKILL and start it again on the same data, with a new CRI client. */
  restartAfterSigkill(): Promise<void>;
}

/** `net`: the pods' network, the file's own bridge and /24 (testNetworks() in network-host.ts). */
export function useCriBerthd(net: TestNet): CriBerthd {
  let d: Berthd | undefined;
  let cri: CriClient | undefined;
  let socket = '';
  let configFile = '';
  let host: HostNetworkState | undefined;
  const must = <T>(v: T | undefined, what: string): T => {
    if (v === undefined) throw new Error(`${what} is not started (beforeAll failed?)`);
    return v;
  };

  const h: CriBerthd = {
    get d() {
      return must(d, 'berthd');
    },
    get cri() {
      return must(cri, 'the CRI client');
    },
    get socket() {
      return socket;
    },
    rt: (m, req = {}) => h.cri.runtime(m, req),
    im: (m, req = {}) => h.cri.image(m, req),
    async runPod(name, extra = {}) {
      const config = podConfig(name, extra);
      const { pod_sandbox_id } = await h.rt('RunPodSandbox', { config });
      return { id: pod_sandbox_id as string, config };
    },
    async startContainer(pod, name, args, extra) {
      const { container_id } = await h.rt('CreateContainer', { pod_sandbox_id: pod.id, config: containerConfig(name, args, extra), sandbox_config: pod.config });
      await h.rt('StartContainer', { container_id });
      return container_id as string;
    },
    async exec(id, cmd, timeout = 0) {
      const r = await h.rt('ExecSync', { container_id: id, cmd, timeout });
      return { stdout: Buffer.from(r.stdout).toString(), stderr: Buffer.from(r.stderr).toString(), exit_code: r.exit_code };
    },
    async restartAfterSigkill() {
      const old = h.d;
      cri?.close();
      await old.stop('SIGKILL');
      d = await startBerthd({ dir: old.dir, args: berthdArgs(configFile) });
      cri = connectCri(socket);
    },
  };

  beforeAll(async () => {
    const dir = fs.mkdtempSync(path.join('/tmp', 'bd-cri-'));
    socket = path.join(dir, 'cri.sock');
    configFile = path.join(dir, 'daemon.json');
    host = saveHostNetworkState();
    const criConfig = { socket, podBridge: net.bridge, podSubnet: net.subnet, cniBinDirs: CNI_BIN_DIRS };
    fs.writeFileSync(configFile, JSON.stringify({ plugins: { builtins: { cri: true }, config: { cri: criConfig } } }));
    d = await startBerthd({ dir, args: berthdArgs(configFile) });
    await d.loadTestImage();
    cri = connectCri(socket);
  }, 120_000);

  afterAll(async () => {
    cri?.close();
    if (d) {
      // Containers first (the Docker API, forced), then the pods' namespaces (RemovePodSandbox) — via a fresh client.
      const c = connectCri(socket);
      try {
        for (const p of ((await c.runtime('ListPodSandbox', {})).items as { id: string }[]) ?? []) await c.runtime('RemovePodSandbox', { pod_sandbox_id: p.id }).catch(() => {});
      } catch {
        /* berthd gone */
      }
      c.close();
      await d.cleanup();
      fs.rmSync(d.dir, { recursive: true, force: true });
    }
    host?.restore([net.bridge]);
    releaseTestNetworks([net]);
    removeTestImageTarball();
  }, 120_000);

  return h;
}
