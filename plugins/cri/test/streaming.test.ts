/**
 * The CRI streaming server without root (FakeRuntime): Exec answers a URL, a WebSocket client
 * speaking v4.channel.k8s.io (as kubectl does) gets the exec's output on channel 1 and the
 * Status on channel 3 (Success, or Failure/NonZeroExitCode with the exit code), a URL is good
 * for one connection, a client without a k8s channel subprotocol is refused, and Exec/Attach of
 * a container that does not run are refused. Real processes with stdin are the e2e's.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { createTestEngine, type TestEngine } from '@berth/testing';
import { LABEL, TYPE_CONTAINER, connectCri, criPlugin, type CriClient, type PodNamespaces } from '../src/index.js';

let t: TestEngine | undefined;
let client: CriClient | undefined;
let dir: string | undefined;
afterEach(async () => {
  client?.close();
  client = undefined;
  await t?.dispose();
  t = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

const fakeNamespaces: PodNamespaces = { create: async (pod) => ({ net: `/fake/${pod.id}/net` }), remove: async () => {}, alive: async () => true };

async function setup(): Promise<{ rt: CriClient['runtime']; id: string }> {
  dir = mkdtempSync(join(tmpdir(), 'berth-cri-stream-'));
  t = await createTestEngine({ plugins: [criPlugin({ socket: join(dir, 'cri.sock'), namespaces: () => fakeNamespaces, network: () => ({ ready: async () => ({ ok: true }), attach: async () => '10.99.0.2', detach: async () => {} }) })] });
  client = connectCri(join(dir, 'cri.sock'));
  const pod = (await client.runtime('RunPodSandbox', { config: { metadata: { name: 'p', uid: 'u', namespace: 'default', attempt: 0 } } })).pod_sandbox_id as string;
  const id = await t.createContainer({ Config: { Cmd: ['/bin/sleep'], Labels: { [LABEL.type]: TYPE_CONTAINER, [LABEL.sandboxId]: pod, [LABEL.name]: 'c' } } });
  return { rt: client.runtime, id };
}

/** Connect as kubectl does; collect the frames by channel until the server closes. */
function stream(url: string, protocols: string[]): Promise<{ protocol: string; channels: Record<number, string> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace(/^http/, 'ws'), protocols);
    const channels: Record<number, string> = {};
    ws.on('message', (data: Buffer) => (channels[data[0]!] = (channels[data[0]!] ?? '') + data.subarray(1).toString()));
    ws.on('close', () => resolve({ protocol: ws.protocol, channels }));
    ws.on('error', reject);
  });
}

describe('CRI streaming server (FakeRuntime)', () => {
  it('serves Exec over WebSocket v4.channel.k8s.io: stdout on channel 1, the Status on channel 3; a URL is good once', async () => {
    const { rt, id } = await setup();
    await t!.engine.containers.start(id);
    t!.fake.script(id, { execOutput: 'hi from exec\n' });
    const { url } = await rt('Exec', { container_id: id, cmd: ['echo', 'hi'], stdout: true, stderr: true });
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/exec\/[A-Za-z0-9_-]+$/);
    const r = await stream(url, ['v4.channel.k8s.io', 'channel.k8s.io']);
    expect(r.protocol).toBe('v4.channel.k8s.io');
    expect(r.channels[1]).toBe('hi from exec\n');
    expect(JSON.parse(r.channels[3]!)).toEqual({ metadata: {}, status: 'Success' });
    await expect(stream(url, ['v4.channel.k8s.io'])).rejects.toThrow(/404/);
    // A non-zero exit: Failure with the code as the cause.
    t!.fake.script(id, { execOutput: '', execExitCode: 3 });
    const failed = await stream((await rt('Exec', { container_id: id, cmd: ['false'], stdout: true })).url, ['v4.channel.k8s.io']);
    expect(JSON.parse(failed.channels[3]!)).toMatchObject({ status: 'Failure', reason: 'NonZeroExitCode', details: { causes: [{ reason: 'ExitCode', message: '3' }] } });
  });

  it('refuses a client without a k8s channel subprotocol, and streams of a container that does not run', async () => {
    const { rt, id } = await setup();
    await expect(rt('Exec', { container_id: id, cmd: ['sh'], stdout: true })).rejects.toMatchObject({ code: grpc.status.FAILED_PRECONDITION });
    await t!.engine.containers.start(id);
    await expect(rt('Exec', { container_id: id, cmd: ['sh'], tty: true, stderr: true })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    const { url } = await rt('Attach', { container_id: id, stdout: true });
    expect(url).toMatch(/\/attach\//);
    await expect(stream(url, ['chat'])).rejects.toThrow(/400/);
  });
});
