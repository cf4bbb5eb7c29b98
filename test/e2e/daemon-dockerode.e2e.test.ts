/**
 * dockerode (the Node client) against a real berthd: version negotiation, create/start with
 * a hijacked attach and demuxed stdout/stderr, wait, logs, exec, list filters, inspect,
 * events, archive both ways, stats, errors with Docker's status codes.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, berthdSkipReason, startBerthd, removeTestImageTarball, type Berthd } from './helpers/berthd.js';

const skip = berthdSkipReason();

function collect(stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let s = '';
    stream.on('data', (d: Buffer) => (s += d.toString()));
    stream.on('end', () => resolve(s));
    stream.on('error', reject);
  });
}

describe.skipIf(skip)(`dockerode against berthd${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let d: Berthd;
  let docker: Docker;
  beforeAll(async () => {
    d = await startBerthd();
    await d.loadTestImage();
    docker = new Docker({ socketPath: d.socket });
  }, 120_000);
  afterAll(async () => {
    await d?.cleanup();
    removeTestImageTarball();
  }, 60_000);

  it('negotiates the version and reads /version and /info', async () => {
    const v = await docker.version();
    expect(v.ApiVersion).toBe('1.56');
    expect(v.MinAPIVersion).toBe('1.24');
    const info = await docker.info();
    expect(info.Images).toBeGreaterThanOrEqual(1);
    expect(info.DefaultRuntime).toBe('runc');
  });

  it('runs a container with a hijacked attach: stdout and stderr demuxed, exit code from wait', async () => {
    const c = await docker.createContainer({ Image: TEST_IMAGE, Cmd: ['sh', '-c', 'echo to-out; echo to-err >&2; exit 6'], AttachStdout: true, AttachStderr: true, HostConfig: { NetworkMode: 'none' } });
    const stream = await c.attach({ stream: true, stdout: true, stderr: true, hijack: true });
    const out = new PassThrough();
    const err = new PassThrough();
    c.modem.demuxStream(stream, out, err);
    const outP = collect(out);
    const errP = collect(err);
    stream.on('end', () => {
      out.end();
      err.end();
    });
    await c.start();
    const w = await c.wait();
    expect(w.StatusCode).toBe(6);
    expect(await outP).toBe('to-out\n');
    expect(await errP).toBe('to-err\n');
    const logs = (await c.logs({ stdout: true, stderr: true, follow: false })) as unknown as Buffer;
    expect(logs.toString()).toContain('to-out');
    await c.remove();
    await expect(c.inspect()).rejects.toMatchObject({ statusCode: 404 });
  });

  it('exec, list with filters, archive, stats, events, errors', async () => {
    const since = Math.floor(Date.now() / 1000) - 1;
    const c = await docker.createContainer({ name: 'dode', Image: TEST_IMAGE, Cmd: ['sleep', '300'], Labels: { suite: 'dockerode' }, HostConfig: { NetworkMode: 'none' } });
    await c.start();
    const ex = await c.exec({ Cmd: ['sh', '-c', 'echo exec-out; exit 2'], AttachStdout: true, AttachStderr: true });
    const es = await ex.start({ hijack: true, stdin: false });
    const eout = new PassThrough();
    c.modem.demuxStream(es, eout, new PassThrough());
    const text = collect(eout);
    es.on('end', () => eout.end());
    expect(await text).toBe('exec-out\n');
    for (let i = 0; i < 50 && (await ex.inspect()).Running; i++) await new Promise((r) => setTimeout(r, 20));
    expect((await ex.inspect()).ExitCode).toBe(2);

    const list = await docker.listContainers({ filters: { label: ['suite=dockerode'] } });
    expect(list.map((x) => x.Names[0])).toEqual(['/dode']);
    expect(list[0].State).toBe('running');

    await c.putArchive(Buffer.from(await tarOf('hello.txt', 'hi from dockerode\n')), { path: '/tmp' });
    const back = await c.getArchive({ path: '/tmp/hello.txt' });
    expect((await collectBuf(back)).toString()).toContain('hi from dockerode');

    const stats = (await c.stats({ stream: false })) as unknown as { id: string; pids_stats: { current: number } };
    expect(stats.id).toBe((await c.inspect()).Id);
    expect(stats.pids_stats.current).toBeGreaterThanOrEqual(1);

    await c.stop({ t: 1 });
    await expect(c.stop()).rejects.toMatchObject({ statusCode: 304 });
    await expect(c.kill()).rejects.toMatchObject({ statusCode: 409 });
    await expect(docker.createContainer({ name: 'dode', Image: TEST_IMAGE })).rejects.toMatchObject({ statusCode: 409 });
    await expect(docker.createContainer({ Image: 'not-here:latest' })).rejects.toMatchObject({ statusCode: 404 });

    const evStream = await docker.getEvents({ since, until: Math.floor(Date.now() / 1000) + 1, filters: { container: ['dode'], event: ['start', 'die'] } });
    const events = (await collect(evStream)).trim().split('\n').map((l) => JSON.parse(l).Action);
    expect(events).toEqual(['start', 'die']);
    await c.remove({ force: true });
  });
});

async function tarOf(name: string, body: string): Promise<Uint8Array> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-dode-'));
  try {
    fs.writeFileSync(path.join(dir, name), body);
    return execFileSync('tar', ['-c', '-C', dir, name]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function collectBuf(stream: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    stream.on('data', (d: Buffer) => parts.push(d));
    stream.on('end', () => resolve(Buffer.concat(parts)));
    stream.on('error', reject);
  });
}
