/**
 * CRI PortForward without root (FakeRuntime, a host-network pod, so the relay process runs
 * without nsenter): the URL's WebSocket carries the port as a little-endian uint16 first on the
 * data and error channels, then a TCP conversation with a listener on the host's loopback
 * (127.0.0.1, or ::1 only: the relay tries both), in binary and base64 framing; ports may come
 * from the URL's query; a port nothing listens on gets its error on the error channel. The pod
 * network namespace case (nsenter) is the e2e's (cri-streaming "should support port forward").
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import WebSocket from 'ws';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { createTestEngine, type TestEngine } from '@berth/testing';
import { NamespaceMode, connectCri, criPlugin, type CriClient, type PodNamespaces } from '../src/index.js';

let t: TestEngine | undefined;
let client: CriClient | undefined;
let dir: string | undefined;
const servers: Server[] = [];
afterEach(async () => {
  client?.close();
  client = undefined;
  await t?.dispose();
  t = undefined;
  for (const s of servers.splice(0)) s.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

const hostNs: PodNamespaces = { create: async () => ({}), remove: async () => {}, alive: async () => true };

async function hostPod(): Promise<{ rt: CriClient['runtime']; pod: string }> {
  dir = mkdtempSync(join(tmpdir(), 'berth-cri-pf-'));
  t = await createTestEngine({ plugins: [criPlugin({ socket: join(dir, 'cri.sock'), namespaces: () => hostNs })] });
  client = connectCri(join(dir, 'cri.sock'));
  const config = { metadata: { name: 'p', uid: 'u', namespace: 'default', attempt: 0 }, linux: { security_context: { namespace_options: { network: NamespaceMode.NODE, pid: NamespaceMode.CONTAINER } } } };
  return { rt: client.runtime, pod: (await client.runtime('RunPodSandbox', { config })).pod_sandbox_id as string };
}

/** A TCP server that answers each line with "echo: <line>" and closes. */
async function lineEcho(host: string): Promise<number> {
  const srv = createServer((s) => s.once('data', (b) => s.end(`echo: ${b.toString()}`)));
  servers.push(srv);
  await new Promise<void>((resolve, reject) => srv.once('error', reject).listen(0, host, resolve));
  return (srv.address() as AddressInfo).port;
}

type Frames = { protocol: string; frames: [number, Buffer][] };

/** Open a port-forward URL, send `input` on data channel 0 once the port prefix came, collect frames until close. */
function forward(url: string, protocols: string[], input: string): Promise<Frames> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace(/^http/, 'ws'), protocols);
    const frames: [number, Buffer][] = [];
    const b64 = () => ws.protocol === 'v4.base64.channel.k8s.io';
    ws.on('message', (data: Buffer, isBinary) => {
      const f: [number, Buffer] = isBinary ? [data[0]!, data.subarray(1)] : [data[0]! - 48, Buffer.from(data.subarray(1).toString(), 'base64')];
      frames.push(f);
      if (frames.length === 2) ws.send(b64() ? `0${Buffer.from(input).toString('base64')}` : Buffer.concat([Buffer.from([0]), Buffer.from(input)]));
    });
    ws.on('close', () => resolve({ protocol: ws.protocol, frames }));
    ws.on('error', reject);
  });
}

const on = (r: Frames, ch: number) => Buffer.concat(r.frames.filter(([c]) => c === ch).map(([, b]) => b));

describe('CRI PortForward (FakeRuntime, host-network pod)', () => {
  it('forwards a TCP conversation over v4.channel.k8s.io: port prefix on both channels, data on channel 0', async () => {
    const { rt, pod } = await hostPod();
    // berthd's own NODE_OPTIONS do not reach the relay (a --require that cannot load would kill it).
    const saved = process.env.NODE_OPTIONS;
    process.env.NODE_OPTIONS = '--require /nonexistent/berth-preload.js';
    onTestFinished(() => {
      if (saved === undefined) delete process.env.NODE_OPTIONS;
      else process.env.NODE_OPTIONS = saved;
    });
    const port = await lineEcho('127.0.0.1');
    const { url } = await rt('PortForward', { pod_sandbox_id: pod, port: [port] });
    expect(url).toMatch(/\/portforward\/[A-Za-z0-9_-]+$/);
    const r = await forward(url, ['v4.channel.k8s.io'], 'hello\n');
    expect(r.protocol).toBe('v4.channel.k8s.io');
    const le = Buffer.alloc(2);
    le.writeUInt16LE(port);
    expect(r.frames.slice(0, 2)).toEqual([[0, le], [1, le]]);
    expect(on(r, 0).subarray(2).toString()).toBe('echo: hello\n');
    expect(on(r, 1).subarray(2).toString()).toBe('');
  });

  it('takes the ports from the URL query, speaks base64 framing, and reaches a listener on ::1 only', async (ctx) => {
    const { rt, pod } = await hostPod();
    let port: number;
    try {
      port = await lineEcho('::1');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // no IPv6 loopback here (an IPv6-less kernel or ::1 not configured): nothing listens on ::1 to reach
      if (code === 'EADDRNOTAVAIL' || code === 'EAFNOSUPPORT') return ctx.skip(`this machine has no IPv6 loopback (listening on ::1: ${code})`);
      throw err;
    }
    const { url } = await rt('PortForward', { pod_sandbox_id: pod });
    const r = await forward(`${url}?port=${port}`, ['v4.base64.channel.k8s.io'], 'six\n');
    expect(r.protocol).toBe('v4.base64.channel.k8s.io');
    expect(on(r, 0).subarray(2).toString()).toBe('echo: six\n');
  });

  it("tears the pod-side connection down when the client goes away (the relay does not outlive the stream)", async () => {
    const { rt, pod } = await hostPod();
    let closed!: () => void;
    const peerClosed = new Promise<void>((resolve) => (closed = resolve));
    const srv = createServer((s) => {
      s.write('hello\n'); // and keeps the connection open
      s.on('close', closed);
      s.on('error', () => {});
    });
    servers.push(srv);
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    const { url } = await rt('PortForward', { pod_sandbox_id: pod, port: [(srv.address() as AddressInfo).port] });
    const ws = new WebSocket(url.replace(/^http/, 'ws'), ['v4.channel.k8s.io']);
    await new Promise<void>((resolve, reject) => {
      ws.on('message', (data: Buffer) => data[0] === 0 && data.subarray(1).toString() === 'hello\n' && resolve());
      ws.on('error', reject);
    });
    ws.terminate();
    await peerClosed; // the relay was killed, so its TCP connection closed
  });

  it('reports a port nothing listens on on its error channel, and refuses bad ports and unknown pods', async () => {
    const { rt, pod } = await hostPod();
    const port = await lineEcho('127.0.0.1');
    servers.pop()!.close(); // now free: nothing listens
    const { url } = await rt('PortForward', { pod_sandbox_id: pod, port: [port] });
    const r = await forward(url, [], '');
    expect(on(r, 1).subarray(2).toString()).toMatch(new RegExp(`^error forwarding port ${port} to pod ${pod}: failed to connect to localhost:${port}.*ECONNREFUSED`));
    await expect(rt('PortForward', { pod_sandbox_id: pod, port: [70000] })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    await expect(rt('PortForward', { pod_sandbox_id: 'nope', port: [80] })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
    const noPorts = (await rt('PortForward', { pod_sandbox_id: pod })).url as string;
    await expect(forward(noPorts, ['v4.channel.k8s.io'], '')).rejects.toThrow(/400/);
  });
});
