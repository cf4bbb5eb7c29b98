/**
 * A pod-wide PID namespace (pid: POD) without root: the holder's lifecycle (pid-holder.ts) with
 * an injected spawner that runs a plain `sh` whose child `sleep` stands for the holder (no new
 * PID namespace without root; the e2e runs the real unshare + tini), and the CRI plugin on
 * FakeRuntime: a POD pod's container spec joins /proc/<holder>/ns/pid, a CONTAINER pod's keeps
 * its own; the holder is found again after a restart, killed at stop, and a failed
 * RunPodSandbox leaves no holder behind.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { FakeRuntime, TestEngine } from '@berth/testing';
import { LABEL, NamespaceMode, PodState, TYPE_CONTAINER, pidHolders, type CriClient, type HolderSpawner, type PidHolder, type PodNetwork } from '../src/index.js';
import { disposeCri, fakePodNetwork, startCri, type CriHarness } from './harness.js';

/** A process whose first child (a long sleep) plays the holder; `sh` stays its parent, as unshare does. */
const shSpawner: HolderSpawner = () => spawn('sh', ['-c', 'sleep 1000; exit 0'], { detached: true, stdio: 'ignore' });

/** Started holders, killed after each test whatever it left. */
let started: PidHolder[] = [];
const holders = () => {
  const h = pidHolders(shSpawner);
  return { ...h, start: async () => { const s = await h.start(); started.push(s); return s; } };
};

/** Is the process gone (or a zombie its parent has not reaped yet)? */
const gone = (pid: number): boolean => {
  try {
    return /^\d+ \(.*\) [ZX]/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
};

let t: TestEngine | undefined;
let h: CriHarness | undefined;
afterEach(async () => {
  await disposeCri();
  t = h = undefined;
  for (const s of started) await pidHolders(shSpawner).stop(s);
  started = [];
});

async function setup(net: PodNetwork = fakePodNetwork()) {
  h = await startCri({ network: () => net, pidHolders: holders() });
  t = h.t;
  return h.rt;
}

const reconnect = () => h!.reconnect();

const podConfig = (name: string, pid: number) => ({
  config: { metadata: { name, uid: `uid-${name}`, namespace: 'default', attempt: 0 }, linux: { security_context: { namespace_options: { pid } } } },
});

const holderOf = async (rt: CriClient['runtime'], id: string): Promise<PidHolder | undefined> => JSON.parse((await rt('PodSandboxStatus', { pod_sandbox_id: id, verbose: true })).info.info).pidHolder;

/** A container of the pod (as CreateContainer labels it), started on FakeRuntime; returns the PID namespace entry of its spec. */
async function pidNamespaceOfStarted(pod: string, joinsPod: boolean) {
  const labels = { [LABEL.type]: TYPE_CONTAINER, [LABEL.sandboxId]: pod, [LABEL.name]: 'c', ...(joinsPod ? { [LABEL.pidNamespace]: 'pod' } : {}) };
  const id = await t!.createContainer({ Config: { Cmd: ['/bin/true'], Labels: labels } });
  await t!.engine.containers.start(id);
  return (t!.runtime as FakeRuntime).containers.get(id)!.spec.linux?.namespaces?.find((n) => n.type === 'pid');
}

describe('pod PID namespace holder (pid-holder.ts, injected spawner)', () => {
  it('starts a holder, knows it by pid and start time, stops it (twice: no error)', async () => {
    const h = holders();
    const s = await h.start();
    // The child is recorded once forked (same pid and start time after its exec): wait for the exec.
    const cmdline = () => readFileSync(`/proc/${s.pid}/cmdline`, 'utf8');
    for (let i = 0; i < 500 && cmdline().startsWith('sh'); i++) await new Promise((r) => setTimeout(r, 10));
    expect(cmdline()).toBe('sleep\u00001000\u0000');
    expect(await h.alive(s)).toBe(true);
    expect(await h.alive({ ...s, startTime: String(Number(s.startTime) + 1) })).toBe(false); // a recycled PID is not the holder
    await h.stop(s);
    expect(gone(s.pid)).toBe(true);
    expect(await h.alive(s)).toBe(false);
    await h.stop(s);
  });

  it('a spawner whose process exits before the holder comes up, or cannot run at all, is an error', async () => {
    await expect(pidHolders(() => spawn('sh', ['-c', 'exit 3'], { stdio: 'ignore' })).start()).rejects.toThrow(/could not start/);
    await expect(pidHolders(() => spawn('/nonexistent/unshare', [], { stdio: 'ignore' })).start()).rejects.toThrow(/could not start/);
  });
});

describe('CRI pods with pid: POD (FakeRuntime)', () => {
  it("a POD pod's container joins /proc/<holder>/ns/pid; a CONTAINER pod has no holder and its container its own PID namespace", async () => {
    const rt = await setup();
    const shared = (await rt('RunPodSandbox', podConfig('shared', NamespaceMode.POD))).pod_sandbox_id as string;
    const holder = await holderOf(rt, shared);
    expect(holder?.pid).toBeGreaterThan(0);
    expect(await pidNamespaceOfStarted(shared, true)).toEqual({ type: 'pid', path: `/proc/${holder!.pid}/ns/pid` });

    const own = (await rt('RunPodSandbox', podConfig('own', NamespaceMode.CONTAINER))).pod_sandbox_id as string;
    expect(await holderOf(rt, own)).toBeUndefined();
    expect(await pidNamespaceOfStarted(own, false)).toEqual({ type: 'pid' });
  });

  it('finds the holder again after a restart, kills it at StopPodSandbox; a dead holder refuses the pod\'s containers and makes it NOTREADY', async () => {
    let rt = await setup();
    const a = (await rt('RunPodSandbox', podConfig('a', NamespaceMode.POD))).pod_sandbox_id as string;
    const b = (await rt('RunPodSandbox', podConfig('b', NamespaceMode.POD))).pod_sandbox_id as string;
    const ha = (await holderOf(rt, a))!;
    const hb = (await holderOf(rt, b))!;
    await t!.restart();
    rt = reconnect();
    expect((await rt('PodSandboxStatus', { pod_sandbox_id: a })).status.state).toBe(PodState.READY);
    await rt('StopPodSandbox', { pod_sandbox_id: a });
    expect(gone(ha.pid)).toBe(true);
    expect(await holderOf(rt, a)).toBeUndefined();

    // b's holder dies under it: its container cannot start, the pod turns NOTREADY (kubelet re-creates it), also after a restart.
    process.kill(hb.pid, 'SIGKILL');
    for (let i = 0; i < 500 && !gone(hb.pid); i++) await new Promise((r) => setTimeout(r, 10));
    await expect(pidNamespaceOfStarted(b, true)).rejects.toMatchObject({ message: expect.stringMatching(/PID namespace of pod sandbox .* is gone/) });
    expect((await rt('PodSandboxStatus', { pod_sandbox_id: b })).status.state).toBe(PodState.NOTREADY);
    await t!.restart();
    rt = reconnect();
    expect((await rt('PodSandboxStatus', { pod_sandbox_id: b })).status.state).toBe(PodState.NOTREADY);
  });

  it('a RunPodSandbox that fails after the holder started leaves no holder running', async () => {
    const pids: number[] = [];
    const rt = await setup(fakePodNetwork('no address left'));
    const before = new Set(started.map((s) => s.pid));
    await expect(rt('RunPodSandbox', podConfig('x', NamespaceMode.POD))).rejects.toMatchObject({ details: expect.stringContaining('no address left') });
    for (const s of started) if (!before.has(s.pid)) pids.push(s.pid);
    expect(pids.length).toBe(1);
    expect(gone(pids[0]!)).toBe(true);
    expect(((await rt('ListPodSandbox', {})).items as unknown[]).length).toBe(0);
  });
});
