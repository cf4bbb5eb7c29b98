/**
 * The CRI server over gRPC on a temp engine with @berth/testing's FakeRuntime (no root): the
 * runtime calls, pods (with fake namespaces: no unshare without root) and their filters, pods
 * surviving a restart, the pod network (a fake CNI network: IP in PodSandboxStatus, released at
 * stop, NetworkReady), the Docker-API removal guard, and typed errors as gRPC status codes.
 * Containers on real runc are the e2e's (test/e2e/cri-*.e2e.test.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { errorKind } from '@berth/core';
import { createTestEngine, type TestEngine } from '@berth/testing';
import { LABEL, PodState, TYPE_CONTAINER, connectCri, criPlugin, type CriCall, type CriClient, type PodNamespaces, type PodNetwork } from '../src/index.js';

let t: TestEngine | undefined;
let clients: CriClient[] = [];
let sockDir: string | undefined;
afterEach(async () => {
  for (const c of clients) c.close();
  clients = [];
  await t?.dispose();
  t = undefined;
  if (sockDir) rmSync(sockDir, { recursive: true, force: true });
  sockDir = undefined;
});

/** Namespaces as paths that are never made (enough for the pod bookkeeping). */
const fakeNamespaces = (removed: string[]): PodNamespaces => ({
  create: async (pod) => ({ net: `/fake/${pod.id}/net`, ipc: `/fake/${pod.id}/ipc`, uts: `/fake/${pod.id}/uts` }),
  remove: async (pod) => void removed.push(pod.id),
  alive: async () => true,
});

/** A CNI network in memory: pod ID → address held (kept across an engine restart, as the CNI cache on disk is). */
const fakeNetwork = (held: Map<string, string>, reason?: string): PodNetwork => {
  let n = 1;
  return {
    ready: async () => (reason ? { ok: false, reason } : { ok: true }),
    attach: async (id, netns) => {
      expect(netns).toBe(`/fake/${id}/net`);
      const ip = `10.99.0.${++n}`;
      held.set(id, ip);
      return ip;
    },
    detach: async (id) => void held.delete(id),
  };
};

type Call = CriCall;

async function setup(removed: string[] = [], network: PodNetwork = fakeNetwork(new Map())): Promise<{ rt: Call; im: Call }> {
  sockDir = mkdtempSync(join(tmpdir(), 'berth-cri-'));
  t = await createTestEngine({ plugins: [criPlugin({ socket: join(sockDir, 'cri.sock'), namespaces: () => fakeNamespaces(removed), network: () => network })] });
  return connect();
}

function connect(): { rt: Call; im: Call } {
  const c = connectCri(join(sockDir!, 'cri.sock'));
  clients.push(c);
  return { rt: c.runtime, im: c.image };
}

const podConfig = (name: string, labels: Record<string, string> = {}) => ({
  config: { metadata: { name, uid: `uid-${name}`, namespace: 'default', attempt: 0 }, hostname: name, labels, annotations: { note: 'a' }, log_directory: '/var/log/pods/x' },
});

describe('CRI server (FakeRuntime)', () => {
  it('answers Version, Status (RuntimeReady, NetworkReady) and RuntimeConfig', async () => {
    const { rt } = await setup();
    const v = await rt('Version', { version: 'v1' });
    expect(v).toMatchObject({ runtime_name: 'berth', runtime_api_version: 'v1' });
    const s = await rt('Status', { verbose: true });
    expect(s.status.conditions.map((c: { type: string; status: boolean }) => [c.type, c.status])).toEqual([
      ['RuntimeReady', true],
      ['NetworkReady', true],
    ]);
    expect(JSON.parse(s.info.config).cgroupDriver).toBe('cgroupfs');
    expect((await rt('RuntimeConfig')).linux.cgroup_driver).toBe(1); // CGROUPFS
  });

  it('runs, lists (by id, state, labels), stops and removes pod sandboxes', async () => {
    const removed: string[] = [];
    const { rt } = await setup(removed);
    const a = (await rt('RunPodSandbox', podConfig('a', { app: 'web' }))).pod_sandbox_id as string;
    const b = (await rt('RunPodSandbox', podConfig('b', { app: 'db' }))).pod_sandbox_id as string;
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    const ids = async (filter: Record<string, unknown>) => ((await rt('ListPodSandbox', { filter })).items as { id: string }[]).map((i) => i.id).sort();
    expect(await ids({})).toEqual([a, b].sort());
    expect(await ids({ id: a.slice(0, 12) })).toEqual([a]);
    expect(await ids({ label_selector: { app: 'db' } })).toEqual([b]);
    await rt('StopPodSandbox', { pod_sandbox_id: b });
    expect(removed).toEqual([b]);
    expect(await ids({ state: { state: PodState.NOTREADY } })).toEqual([b]);
    expect(await ids({ state: { state: PodState.READY } })).toEqual([a]);
    const st = await rt('PodSandboxStatus', { pod_sandbox_id: a, verbose: true });
    expect(st.status).toMatchObject({ id: a, state: PodState.READY, metadata: { name: 'a', namespace: 'default', uid: 'uid-a' }, labels: { app: 'web' }, annotations: { note: 'a' } });
    expect(JSON.parse(st.info.info).namespaces.net).toBe(`/fake/${a}/net`);
    await rt('RemovePodSandbox', { pod_sandbox_id: b });
    await rt('RemovePodSandbox', { pod_sandbox_id: b }); // twice: not an error (kubelet retries)
    expect(await ids({})).toEqual([a]);
  });

  it('refuses a second pod with the same metadata, and answers NOT_FOUND for an unknown pod', async () => {
    const { rt } = await setup();
    await rt('RunPodSandbox', podConfig('a'));
    await expect(rt('RunPodSandbox', podConfig('a'))).rejects.toMatchObject({ code: grpc.status.FAILED_PRECONDITION });
    await expect(rt('PodSandboxStatus', { pod_sandbox_id: 'nope' })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
    await expect(rt('RunPodSandbox', { config: { metadata: { name: 'x' } } })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    await expect(rt('RunPodSandbox', { ...podConfig('h'), runtime_handler: 'no-such-runtime' })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  });

  it('keeps pods across a restart of the engine', async () => {
    const { rt } = await setup();
    const a = (await rt('RunPodSandbox', podConfig('a'))).pod_sandbox_id as string;
    for (const c of clients) c.close();
    clients = [];
    await t!.restart();
    const again = connect();
    const items = (await again.rt('ListPodSandbox', {})).items as { id: string; state: number }[];
    expect(items).toEqual([expect.objectContaining({ id: a, state: PodState.READY })]);
  });

  it('puts a pod on the CNI network: PodSandboxStatus shows its IP, stop releases it (twice, after a restart too)', async () => {
    const held = new Map<string, string>();
    const { rt } = await setup([], fakeNetwork(held));
    const a = (await rt('RunPodSandbox', podConfig('a'))).pod_sandbox_id as string;
    const ipA = held.get(a);
    expect(ipA).toMatch(/^10\.99\.0\.\d+$/);
    expect((await rt('PodSandboxStatus', { pod_sandbox_id: a })).status.network.ip).toBe(ipA);
    await rt('StopPodSandbox', { pod_sandbox_id: a });
    expect(held.has(a)).toBe(false);
    expect((await rt('PodSandboxStatus', { pod_sandbox_id: a })).status.network.ip).toBe('');
    await rt('StopPodSandbox', { pod_sandbox_id: a }); // again: nothing left to release, not an error
    // A pod still holding its address when berthd restarts gives it back at stop after the restart.
    const b = (await rt('RunPodSandbox', podConfig('b'))).pod_sandbox_id as string;
    for (const c of clients) c.close();
    clients = [];
    await t!.restart();
    const again = connect();
    expect((await again.rt('PodSandboxStatus', { pod_sandbox_id: b })).status.network.ip).toBe(held.get(b));
    await again.rt('RemovePodSandbox', { pod_sandbox_id: b });
    expect([...held.keys()]).toEqual([]);
  });

  it('answers NetworkReady false with the reason when the pod network is not usable, and pods get loopback only', async () => {
    const held = new Map<string, string>();
    const { rt } = await setup([], fakeNetwork(held, 'the CNI plugin bridge is not in /opt/cni/bin'));
    const s = await rt('Status', {});
    expect(s.status.conditions.find((c: { type: string }) => c.type === 'NetworkReady')).toMatchObject({ status: false, reason: 'NetworkPluginNotReady', message: 'the CNI plugin bridge is not in /opt/cni/bin' });
    const a = (await rt('RunPodSandbox', podConfig('a'))).pod_sandbox_id as string;
    expect((await rt('PodSandboxStatus', { pod_sandbox_id: a })).status.network.ip).toBe('');
    expect(held.size).toBe(0);
  });

  it('refuses a Docker-API removal without force of a ready pod\'s container', async () => {
    const { rt } = await setup();
    const pod = (await rt('RunPodSandbox', podConfig('a'))).pod_sandbox_id as string;
    const labels = { [LABEL.type]: TYPE_CONTAINER, [LABEL.sandboxId]: pod, [LABEL.name]: 'c' };
    const id = await t!.createContainer({ Config: { Cmd: ['/bin/true'], Labels: labels } });
    const err = await t!.engine.containers.remove(id).catch((e: unknown) => e);
    expect(errorKind(err)).toBe('Conflict');
    expect(t!.engine.containers.has(id)).toBe(true);
    // Listed through the CRI too, with its metadata; removed by the CRI (force).
    const listed = (await rt('ListContainers', { filter: { pod_sandbox_id: pod } })).containers as { id: string; metadata: { name: string } }[];
    expect(listed.map((c) => [c.id, c.metadata.name])).toEqual([[id, 'c']]);
    await rt('RemoveContainer', { container_id: id });
    expect(t!.engine.containers.has(id)).toBe(false);
    // A plain Docker container is not the plugin's business.
    const plain = await t!.createContainer({ Config: { Cmd: ['/bin/true'] } });
    await t!.engine.containers.remove(plain);
    expect(t!.engine.containers.has(plain)).toBe(false);
  });

  it("passes a pod's host ports to its network as CNI portMappings; a bad mapping is INVALID_ARGUMENT and makes no pod", async () => {
    const given: unknown[] = [];
    const net = fakeNetwork(new Map());
    const { rt } = await setup([], { ...net, attach: async (id, netns, k8s, portMappings) => (given.push(portMappings), net.attach(id, netns, k8s, portMappings)) });
    const port_mappings = [
      { protocol: 0, container_port: 80, host_port: 18080 },
      { protocol: 0, container_port: 443 },
    ];
    await rt('RunPodSandbox', { config: { ...podConfig('a').config, port_mappings } });
    expect(given).toEqual([[{ hostPort: 18080, containerPort: 80, protocol: 'tcp' }]]);
    const bad = { ...podConfig('b').config, port_mappings: [{ protocol: 9, container_port: 80, host_port: 80 }] };
    await expect(rt('RunPodSandbox', { config: bad })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    expect(((await rt('ListPodSandbox', {})).items as unknown[]).length).toBe(1);
  });
});
