/**
 * SPDY/3.1 on the CRI streaming server without root (FakeRuntime): a client made from
 * spdy-transport that behaves as Go's spdystream (src/spdy-client.ts: only its own headers on a
 * SYN_STREAM, no flow control) upgrades an Exec/Attach/PortForward URL and gets, as from
 * kubelet: the chosen X-Stream-Protocol-Version in the 101, a SYN_REPLY per stream, the exec's
 * output on the stdout stream and the v4 Status (Success, or Failure with the exit code) on the
 * error stream; stdin's data and FIN and the resize stream's sizes reach the exec; a port
 * forward's data/error pair is one connection to the pod's port (the data stream's FIN
 * half-closes it; a refused one: its error on the error stream); a bad protocol version is 403
 * (none: 400) and leaves the URL usable; a client that drops the connection mid-exec gets the
 * exec killed, one that sends no SPDY is cut off, and the server keeps serving.
 */
import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server } from 'node:net';
import type { Duplex, Readable } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryLogger } from '@berth/core';
import type { TestEngine } from '@berth/testing';
import { LABEL, NamespaceMode, TYPE_CONTAINER, type CriClient, type CriPluginOptions, type PodNamespaces } from '../src/index.js';
import { dialSpdy, openSpdyStream, readAll, type SpdyDialed } from '../src/spdy-client.js';
import { serveSpdy, upgradeSpdy, SPDY_STREAM_PROTOCOLS } from '../src/spdy.js';
import { disposeCri, startCri } from './harness.js';

let t: TestEngine | undefined;
const sockets: Duplex[] = [];
const servers: Server[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) s.close();
  t = undefined;
  await disposeCri();
});

/** A CRI plugin on FakeRuntime (test/harness.ts) with one pod. */
async function engine(options: CriPluginOptions = {}, podLinux?: object): Promise<{ rt: CriClient['runtime']; pod: string }> {
  const h = await startCri(options);
  t = h.t;
  const config = { metadata: { name: 'p', uid: 'u', namespace: 'default', attempt: 0 }, ...(podLinux ? { linux: podLinux } : {}) };
  return { rt: h.rt, pod: (await h.rt('RunPodSandbox', { config })).pod_sandbox_id as string };
}

async function runningContainer(): Promise<{ rt: CriClient['runtime']; id: string }> {
  const { rt, pod } = await engine();
  const id = await t!.createContainer({ Config: { Cmd: ['/bin/sleep'], Labels: { [LABEL.type]: TYPE_CONTAINER, [LABEL.sandboxId]: pod, [LABEL.name]: 'c' } } });
  await t!.engine.containers.start(id);
  return { rt, id };
}

/** Upgrade as a Go peer does (spdy-client.ts); the socket is destroyed after the test. */
async function dial(url: string, protocols: string[]): Promise<SpdyDialed> {
  const d = await dialSpdy(url, protocols);
  if (d.socket) sockets.push(d.socket);
  return d;
}
const open = openSpdyStream;
const text = readAll;

describe('CRI streaming server over SPDY/3.1 (FakeRuntime)', () => {
  it('serves Exec: 101 with v4.channel.k8s.io, stdout on its stream, the v4 Status on the error stream; a URL is good once', async () => {
    const { rt, id } = await runningContainer();
    t!.fake.script(id, { execOutput: 'hi from exec\n' });
    const { url } = await rt('Exec', { container_id: id, cmd: ['echo', 'hi'], stdout: true, stderr: true });
    const d = await dial(url, ['v4.channel.k8s.io', 'v3.channel.k8s.io']);
    expect(d.status).toBe(101);
    expect(d.protocol).toBe('v4.channel.k8s.io');
    const [error, stdout, stderr] = await Promise.all(['error', 'stdout', 'stderr'].map((streamtype) => open(d.conn!, { streamtype })));
    const [e, o, er] = await Promise.all([text(error!), text(stdout!), text(stderr!)]);
    expect(o).toBe('hi from exec\n');
    expect(er).toBe('');
    expect(JSON.parse(e)).toEqual({ metadata: {}, status: 'Success' });
    expect((await dial(url, ['v4.channel.k8s.io'])).status).toBe(404);

    t!.fake.script(id, { execOutput: '', execExitCode: 3 });
    const failed = await dial((await rt('Exec', { container_id: id, cmd: ['false'], stdout: true })).url, ['v4.channel.k8s.io']);
    const [ferr, fout] = await Promise.all(['error', 'stdout'].map((streamtype) => open(failed.conn!, { streamtype })));
    const [status] = await Promise.all([text(ferr!), text(fout!)]);
    expect(JSON.parse(status)).toMatchObject({ status: 'Failure', reason: 'NonZeroExitCode', details: { causes: [{ reason: 'ExitCode', message: '3' }] } });
  });

  it('sends more than the initial 64 KiB window to a peer that never sends WINDOW_UPDATE (as Go spdystream)', async () => {
    const { rt, id } = await runningContainer();
    const big = 'x'.repeat(200 * 1024);
    t!.fake.script(id, { execOutput: big });
    const d = await dial((await rt('Exec', { container_id: id, cmd: ['cat'], stdout: true })).url, ['v4.channel.k8s.io']);
    const [error, stdout] = await Promise.all(['error', 'stdout'].map((streamtype) => open(d.conn!, { streamtype })));
    const [e, o] = await Promise.all([text(error!), text(stdout!)]);
    expect(o.length).toBe(big.length);
    expect(JSON.parse(e)).toEqual({ metadata: {}, status: 'Success' });
  });

  it('v3 writes only an error text on the error stream (nothing on success)', async () => {
    const { rt, id } = await runningContainer();
    t!.fake.script(id, { execOutput: 'x', execExitCode: 2 });
    const d = await dial((await rt('Exec', { container_id: id, cmd: ['false'], stdout: true })).url, ['v3.channel.k8s.io']);
    expect(d.protocol).toBe('v3.channel.k8s.io');
    const [error, stdout] = await Promise.all(['error', 'stdout'].map((streamtype) => open(d.conn!, { streamtype })));
    const [e, o] = await Promise.all([text(error!), text(stdout!)]);
    expect(o).toBe('x');
    expect(e).toBe('command terminated with non-zero exit code: exit status 2');
  });

  it("passes stdin (data, then FIN) and the resize stream's sizes to a tty exec; a client that drops the connection gets the exec killed", async () => {
    const { rt, id } = await runningContainer();
    t!.fake.script(id, { execRunFor: 600_000 });
    const { url } = await rt('Exec', { container_id: id, cmd: ['sh'], stdin: true, stdout: true, tty: true });
    const d = await dial(url, ['v4.channel.k8s.io']);
    const [, stdin, , resize] = await Promise.all(['error', 'stdin', 'stdout', 'resize'].map((streamtype) => open(d.conn!, { streamtype })));
    await vi.waitFor(() => expect(t!.fake.callsOf('exec', id)).toHaveLength(1));
    const opts = t!.fake.callsOf('exec', id)[0]!.args[0] as { streams: { stdin: Readable } };
    const got = text(opts.streams.stdin);
    stdin!.end('hello\n');
    expect(await got).toBe('hello\n');
    resize!.write('{"Width":100,"Height":40}\n{"Width":120,');
    resize!.write('"Height":50}');
    await vi.waitFor(() => expect(t!.fake.callsOf('resize', id).map((c) => c.args[0])).toEqual([{ width: 100, height: 40 }, { width: 120, height: 50 }]));
    d.socket!.destroy();
    await vi.waitFor(() => expect(t!.fake.callsOf('kill', id).map((c) => c.args[0])).toContain(9));
    // The server is still there: a new exec over SPDY works.
    t!.fake.script(id, { execOutput: 'again', execRunFor: 0 });
    const again = await dial((await rt('Exec', { container_id: id, cmd: ['true'], stdout: true })).url, ['v4.channel.k8s.io']);
    const [e2, o2] = await Promise.all(['error', 'stdout'].map((streamtype) => open(again.conn!, { streamtype })));
    expect(await text(o2!)).toBe('again');
    expect(JSON.parse(await text(e2!))).toEqual({ metadata: {}, status: 'Success' });
  });

  it('a client that goes away before opening all its streams does not take the server down', async () => {
    const { rt, id } = await runningContainer();
    const d = await dial((await rt('Exec', { container_id: id, cmd: ['true'], stdout: true, stdin: true })).url, ['v4.channel.k8s.io']);
    await open(d.conn!, { streamtype: 'error' });
    d.socket!.destroy();
    // Nor does one that sends what is no SPDY/3 frame after the 101: its connection is closed.
    const junk = await dial((await rt('Exec', { container_id: id, cmd: ['true'], stdout: true })).url, ['v4.channel.k8s.io']);
    const junkClosed = new Promise((resolve) => junk.socket!.once('close', resolve));
    junk.socket!.write(Buffer.from([0x80, 99, 0, 1, 0, 0, 0, 0])); // a control frame of SPDY version 99
    await junkClosed;
    t!.fake.script(id, { execOutput: 'still here' });
    const again = await dial((await rt('Exec', { container_id: id, cmd: ['true'], stdout: true })).url, ['v4.channel.k8s.io']);
    const [, o] = await Promise.all(['error', 'stdout'].map((streamtype) => open(again.conn!, { streamtype })));
    expect(await text(o!)).toBe('still here');
    expect(t!.fake.callsOf('exec', id)).toHaveLength(1); // the dropped one never started
  });

  it('drops a connection whose client does not open all its streams within the stream creation timeout; the session never runs', async () => {
    const logger = new MemoryLogger();
    const run = vi.fn(async () => {});
    let served: Promise<void> | undefined;
    const http = createHttpServer();
    http.on('upgrade', (req, socket, head) => {
      const s = upgradeSpdy(req, socket, head, SPDY_STREAM_PROTOCOLS)!;
      const job = { kind: 'exec' as const, containerId: 'c1', tty: false, stdin: false, stdout: true, stderr: false };
      served = serveSpdy(s, job, { run, dialer: () => { throw new Error('no port forward here'); }, logger, streamCreationTimeoutMs: 50 });
    });
    servers.push(http as unknown as Server);
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const d = await dial(`http://127.0.0.1:${(http.address() as AddressInfo).port}/exec/x`, ['v4.channel.k8s.io']);
    await open(d.conn!, { streamtype: 'error' }); // stdout never comes
    await new Promise((resolve) => d.socket!.once('close', resolve));
    await served;
    expect(run).not.toHaveBeenCalled();
    expect(logger.entries.map((e) => e.msg)).toContain('CRI SPDY stream: timed out waiting for the client to create streams');
  });

  it('closing the plugin (berthd stopping) cuts the SPDY connections it serves', async () => {
    const { rt, id } = await runningContainer();
    t!.fake.script(id, { execRunFor: 600_000 });
    const d = await dial((await rt('Exec', { container_id: id, cmd: ['sleep'], stdout: true })).url, ['v4.channel.k8s.io']);
    await Promise.all(['error', 'stdout'].map((streamtype) => open(d.conn!, { streamtype })));
    await vi.waitFor(() => expect(t!.fake.callsOf('exec', id)).toHaveLength(1));
    const closed = new Promise((resolve) => d.socket!.once('close', resolve));
    await disposeCri();
    await closed;
  });

  it('serves Attach with the same session: it lasts until the container exits, then the Status on the error stream', async () => {
    const { rt, id } = await runningContainer();
    const d = await dial((await rt('Attach', { container_id: id, stdout: true })).url, ['v4.channel.k8s.io']);
    expect(d.status).toBe(101);
    const [error, stdout] = await Promise.all(['error', 'stdout'].map((streamtype) => open(d.conn!, { streamtype })));
    const ended = Promise.all([text(error!), text(stdout!)]);
    await t!.engine.containers.stop(id, { timeout: 1 });
    const [e] = await ended;
    expect(JSON.parse(e)).toEqual({ metadata: {}, status: 'Success' });
  });

  it('refuses a protocol version it does not serve (403, with the ones it accepts) or none (400), and the URL stays usable', async () => {
    const { rt, id } = await runningContainer();
    const { url } = await rt('Exec', { container_id: id, cmd: ['true'], stdout: true });
    const bad = await dial(url, ['v9.channel.k8s.io']);
    expect(bad.status).toBe(403);
    expect(bad.body).toMatch(/unable to negotiate protocol/);
    expect(String(bad.accepted)).toContain('v4.channel.k8s.io');
    expect((await dial(url, [])).status).toBe(400);
    expect((await dial(url, ['portforward.k8s.io'])).status).toBe(403);
    expect((await dial(url, ['v4.channel.k8s.io'])).status).toBe(101);
  });
});

describe('CRI PortForward over SPDY/3.1 (FakeRuntime, host-network pod)', () => {
  it('a data/error stream pair per request: a TCP conversation with the port; a refused port: its error on the error stream', async () => {
    const hostNs: PodNamespaces = { create: async () => ({}), remove: async () => {}, alive: async () => true };
    const { rt, pod } = await engine({ namespaces: () => hostNs }, { security_context: { namespace_options: { network: NamespaceMode.NODE, pid: NamespaceMode.CONTAINER } } });
    const srv = createServer((s) => s.once('data', (b) => s.end(`echo: ${b.toString()}`)));
    servers.push(srv);
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    const port = String((srv.address() as AddressInfo).port);
    const { url } = await rt('PortForward', { pod_sandbox_id: pod, port: [] });
    const d = await dial(url, ['portforward.k8s.io']);
    expect(d.status).toBe(101);
    expect(d.protocol).toBe('portforward.k8s.io');
    const error = await open(d.conn!, { streamtype: 'error', port, requestid: '0' });
    const data = await open(d.conn!, { streamtype: 'data', port, requestid: '0' });
    const [e, out] = [text(error), text(data)];
    data.write('ping\n');
    expect(await out).toBe('echo: ping\n');
    expect(await e).toBe('');

    // The data stream's FIN half-closes the connection to the pod: a server answering only at EOF answers.
    const atEof = createServer((c) => {
      let got = '';
      c.on('data', (b) => (got += b.toString()));
      c.on('end', () => c.end(`got: ${got}`));
    });
    servers.push(atEof);
    await new Promise<void>((resolve) => atEof.listen(0, '127.0.0.1', resolve));
    const eofPort = String((atEof.address() as AddressInfo).port);
    const error3 = await open(d.conn!, { streamtype: 'error', port: eofPort, requestid: '2' });
    const data3 = await open(d.conn!, { streamtype: 'data', port: eofPort, requestid: '2' });
    const got3 = Promise.all([text(data3), text(error3)]);
    data3.end('all of it');
    expect(await got3).toEqual(['got: all of it', '']);

    // Nothing listens on a closed listener's port.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const dead = String((closed.address() as AddressInfo).port);
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const error2 = await open(d.conn!, { streamtype: 'error', port: dead, requestid: '1' });
    const data2 = await open(d.conn!, { streamtype: 'data', port: dead, requestid: '1' });
    const [e2] = await Promise.all([text(error2), text(data2)]);
    expect(e2).toContain(`error forwarding port ${dead} to pod ${pod}`);
  });
});
