/**
 * Issue 10 item 9 against a real berthd: a few hundred clients that trickle their headers do
 * not keep /_ping from answering and berthd's file descriptors stay bounded by the connection
 * cap; once the headers timeout passes they get a 408 and are gone; hijacked sessions (exec)
 * and streams (logs -f) outlive several idle timeouts. Bounds set small with berthd's
 * --berth-max-connections, --berth-header-timeout and --berth-idle-timeout. Out of file
 * descriptors (accept failing with EMFILE), berthd keeps running.
 */
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, berthdSkipReason, removeTestImageTarball, startBerthd, type Berthd } from './helpers/berthd.js';
import { httpHead, openFds, settles, upgradeHead } from '../../packages/daemon/test/helpers/disconnect.js';

const skip = berthdSkipReason();
const CAP = 100;
const SLOW = 300;

describe.skipIf(skip)(`slow clients against a real berthd${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let d: Berthd;
  const clients: net.Socket[] = [];

  beforeAll(async () => {
    d = await startBerthd({ args: ['--berth-max-connections', String(CAP), '--berth-header-timeout', '3', '--berth-idle-timeout', '0.5'] });
    await d.loadTestImage();
  }, 120_000);
  afterAll(async () => {
    for (const c of clients) c.destroy();
    await d?.cleanup();
    removeTestImageTarball();
  });

  const connect = (): Promise<net.Socket> =>
    new Promise((resolve) => {
      const c = net.connect(d.socket, () => resolve(c));
      c.on('error', () => {});
      clients.push(c);
    });

  it(`${SLOW} slow-header clients: /_ping answers, fds stay bounded, and they get a 408 once the headers timeout passes`, { timeout: 120_000 }, async () => {
    const pid = d.process.pid!;
    const baseline = openFds(pid).length;
    const slow: Array<{ sock: net.Socket; got: Promise<string> }> = [];
    for (let i = 0; i < SLOW; i++) {
      const sock = await connect();
      sock.write('GET /_ping HTTP/1.1\r\nHost: berth\r\nX-Slow: ');
      let got = '';
      sock.on('data', (b: Buffer) => (got += b.toString()));
      slow.push({ sock, got: new Promise((resolve) => sock.on('close', () => resolve(got))) });
      if (i % 50 === 49) expect(await d.api('GET', '/_ping')).toEqual({ status: 200, body: 'OK' });
    }
    expect(await d.api('GET', '/_ping')).toEqual({ status: 200, body: 'OK' });
    expect(openFds(pid).length).toBeLessThanOrEqual(baseline + CAP + 8);
    // the ones still connected when the headers timeout passes are answered 408 and closed
    const answers = await Promise.all(slow.map((s) => s.got));
    for (const a of answers) expect(a === '' || a.startsWith('HTTP/1.1 408 ')).toBe(true);
    expect(answers.some((a) => a.startsWith('HTTP/1.1 408 '))).toBe(true);
    const after = await settles(() => openFds(pid).length, (n) => n <= baseline + 4);
    expect(after).toBeLessThanOrEqual(baseline + 4);
    expect(d.log()).toContain('API connection cap reached');
  });

  it('out of file descriptors, berthd keeps running and answers once they are free again', { timeout: 120_000 }, async () => {
    const own = await startBerthd();
    const extra: net.Socket[] = [];
    try {
      const pid = own.process.pid!;
      // leave berthd ~40 descriptors of room, then open more connections than that
      const limit = openFds(pid).length + 40;
      execFileSync('prlimit', ['--pid', String(pid), `--nofile=${limit}`]);
      for (let i = 0; i < 150; i++) {
        const c = net.connect(own.socket);
        c.on('error', () => {});
        extra.push(c);
        await new Promise<void>((resolve) => {
          c.once('connect', () => resolve());
          c.once('close', () => resolve());
        });
        c.write('GET /_ping HTTP/1.1\r\nHost: berth\r\nX-Slow: ');
      }
      await new Promise((r) => setTimeout(r, 500));
      // berthd did run out: every descriptor it may have is open
      expect(openFds(pid).length).toBeGreaterThanOrEqual(limit - 2);
      expect(own.process.exitCode, own.log().slice(-3000)).toBeNull();
      // (libuv drops the connections it cannot accept; berthd is not told, and must not care)
      for (const c of extra) c.destroy();
      const ping = await settles(() => own.api('GET', '/_ping').catch((e: Error) => ({ status: 0, body: e.message })), (r) => r.status === 200, 20_000);
      expect(ping).toEqual({ status: 200, body: 'OK' });
    } finally {
      for (const c of extra) c.destroy();
      await own.cleanup();
    }
  });

  it('a hijacked exec session and a logs -f stream outlive several idle timeouts', { timeout: 120_000 }, async () => {
    const run = await d.docker(['run', '-d', '--name', 'quiet', TEST_IMAGE, 'sleep', '1000']);
    expect(run.code, run.stderr).toBe(0);
    const id = run.stdout.trim();
    const ex = await d.api('POST', `/v1.44/containers/${id}/exec`, { Cmd: ['cat'], AttachStdin: true, AttachStdout: true });
    expect(ex.status, ex.body).toBe(201);
    const exec = await connect();
    let execOut = '';
    let execClosed = false;
    exec.on('data', (b: Buffer) => (execOut += b.toString('latin1')));
    exec.on('close', () => (execClosed = true));
    const { head, body } = upgradeHead(`/v1.44/exec/${JSON.parse(ex.body).Id}/start`, '{"Detach":false,"Tty":false}');
    exec.write(Buffer.concat([Buffer.from(head), body]));
    const logs = await connect();
    let logsClosed = false;
    logs.on('data', () => {});
    logs.on('close', () => (logsClosed = true));
    logs.write(httpHead('GET', `/v1.44/containers/${id}/logs?follow=1&stdout=1&stderr=1`));
    // an idle keep-alive connection is closed meanwhile
    const idle = await connect();
    const idleClosed = new Promise<void>((resolve) => idle.on('close', () => resolve()));
    idle.on('data', () => {});
    idle.write(httpHead('GET', '/_ping'));
    await idleClosed;
    await new Promise((r) => setTimeout(r, 2500));
    expect(execClosed).toBe(false);
    expect(logsClosed).toBe(false);
    // the session still works: stdin reaches cat, its output comes back
    exec.write('still here\n');
    const echoed = await settles(() => execOut, (o) => o.includes('still here'), 10_000);
    expect(echoed).toContain('still here');
    exec.destroy();
    logs.destroy();
    expect((await d.docker(['rm', '-f', 'quiet'])).code).toBe(0);
  });
});
