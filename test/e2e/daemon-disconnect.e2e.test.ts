/**
 * Issue 10 item 1 against a real berthd (real runc and conmon): clients that go away at
 * seeded random points of every streaming endpoint — attach (with input after the detach
 * keys), exec start, logs -f, events, stats, archive GET/PUT, export, images save/load and,
 * with Debian's docker-registry on 127.0.0.1, pull/push — never end the daemon, and once they
 * are gone it has leaked nothing: berthd's fds, open fds on the container's log (followers),
 * events subscriptions (/info NEventsListener), monitors (conmon processes) all back to the
 * baseline. Then the last guard (last-guard.ts) in a child berthd: an uncaught exception in a
 * request ends only that request; one of unknown origin exits 70, the containers keep running,
 * and the next berthd on the same data root serves them.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, berthdSkipReason, removeTestImageTarball, startBerthd, testImageTarball, which, type Berthd } from './helpers/berthd.js';
import { processesMentioning } from './runtime-helpers.js';
import { containerEndpoints, disconnectLoop, imageEndpoints, openFds, settles, tarOf } from '../../packages/daemon/test/helpers/disconnect.js';

const skip = berthdSkipReason();
const SEED = Number(process.env.BERTH_DISCONNECT_SEED ?? 10101);
const ROUNDS = 10;

interface Registry {
  host: string;
  stop(): Promise<void>;
}

function conmons(execRoot: string): string[] {
  return processesMentioning(execRoot).filter((p) => /conmon/.test(p));
}

/** berthd's state that must come back after the clients are gone. */
async function snapshot(d: Berthd, logPath: string) {
  const fds = openFds(d.process.pid!);
  const info = await d.api('GET', '/info');
  const listeners = info.status === 200 ? (JSON.parse(info.body) as { NEventsListener: number }).NEventsListener : `/info: ${info.status} ${info.body}`;
  return { fds: fds.length, logFds: fds.filter((f) => f === logPath).length, listeners, conmons: conmons(d.execRoot).length, all: fds };
}

describe.skipIf(skip)(`clients that go away mid-stream (real berthd)${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let d: Berthd;
  let reg: Registry | null = null;
  let id = '';
  let logPath = '';

  beforeAll(async () => {
    d = await startBerthd();
    await d.loadTestImage();
    const run = await d.docker(['run', '-d', '-i', '--name', 'chaos', TEST_IMAGE, 'sh', '-c', 'while :; do echo tick; sleep 0.1; done']);
    expect(run.code, run.stderr).toBe(0);
    id = run.stdout.trim();
    logPath = JSON.parse((await d.api('GET', `/containers/${id}/json`)).body).LogPath;
    if (which('docker-registry')) {
      const { startRegistry } = await import('../../packages/image-store/test/registry-server.js');
      reg = await startRegistry();
      const remote = `${reg.host}/chaos`;
      expect((await d.docker(['tag', TEST_IMAGE, remote])).code).toBe(0);
      const pushed = await d.docker(['push', remote]);
      expect(pushed.code, pushed.stderr).toBe(0);
    }
  }, 120_000);

  afterAll(async () => {
    await reg?.stop();
    await d?.cleanup();
    removeTestImageTarball();
  });

  it(`every streaming endpoint, abandoned at seeded random points (seed ${SEED}): berthd answers and leaks nothing`, { timeout: 300_000 }, async () => {
    const tar = await tarOf({ 'a.bin': Buffer.alloc(1024 * 1024, 1), 'b.txt': Buffer.from('b\n') });
    const createExec = async () => {
      const r = await d.api('POST', `/v1.44/containers/${id}/exec`, { Cmd: ['cat'], AttachStdin: true, AttachStdout: true, AttachStderr: true });
      expect(r.status, r.body).toBe(201);
      return JSON.parse(r.body).Id as string;
    };
    const endpoints = [...containerEndpoints(id, createExec, tar), ...imageEndpoints(TEST_IMAGE, fs.readFileSync(testImageTarball()), reg ? `${reg.host}/chaos` : null)];
    if (!reg) console.warn('docker-registry is not installed: images pull/push are not driven');

    // A clean round first, so that what berthd opens once and keeps is in the baseline.
    await disconnectLoop({ socketPath: d.socket, endpoints, iterations: endpoints.length, seed: 1, parallel: 1 });
    const quiet = (s: Awaited<ReturnType<typeof snapshot>>, base: Awaited<ReturnType<typeof snapshot>>) =>
      s.fds <= base.fds + 4 && s.logFds <= base.logFds && s.listeners === 0 && s.conmons <= base.conmons;
    const first = await snapshot(d, logPath);
    const baseline = await settles(() => snapshot(d, logPath), (s) => quiet(s, first) && s.fds <= first.fds);

    const runs = await disconnectLoop({ socketPath: d.socket, endpoints, iterations: endpoints.length * ROUNDS, seed: SEED, parallel: 3 });
    expect(new Set(runs.map((r) => r.endpoint)).size).toBe(endpoints.length);

    expect(d.process.exitCode, d.log().slice(-4000)).toBeNull();
    expect(await d.api('GET', '/_ping')).toEqual({ status: 200, body: 'OK' });
    const after = await settles(() => snapshot(d, logPath), (s) => quiet(s, baseline));
    expect(after.listeners).toBe(0);
    expect(after.logFds, 'log followers left open').toBeLessThanOrEqual(baseline.logFds);
    expect(after.conmons, conmons(d.execRoot).join('\n')).toBeLessThanOrEqual(baseline.conmons);
    expect(after.fds, after.all.join('\n')).toBeLessThanOrEqual(baseline.fds + 4);
    expect(d.log()).not.toMatch(/uncaught exception|unhandled rejection/);
    // the container was never disturbed
    const state = JSON.parse((await d.api('GET', `/containers/${id}/json`)).body).State;
    expect(state.Running).toBe(true);
    const logs = await d.docker(['logs', '--tail', '1', id]);
    expect(logs.stdout).toBe('tick\n');
  });
});

describe.skipIf(skip)(`the last guard in berthd${skip ? ` (skipped: ${skip})` : ''}`, () => {
  it('an uncaught exception in a request ends that request only; berthd keeps serving', { timeout: 60_000 }, async () => {
    const d = await startBerthd({ env: { BERTH_FAILPOINTS: 'api.events.untilTimer=error' } });
    try {
      const until = (Date.now() + 300) / 1000;
      // the head is out before the timer throws: the client sees the answer cut off
      const outcome = await new Promise<string>((resolve) => {
        const req = http.request({ socketPath: d.socket, path: `/v1.44/events?until=${until}` }, (res) => {
          res.resume();
          res.on('end', () => resolve('ended cleanly'));
          res.on('error', () => resolve('cut off'));
          res.on('aborted', () => resolve('cut off'));
        });
        req.on('error', () => resolve('cut off'));
        req.end();
      });
      expect(outcome).toBe('cut off');
      expect(await d.api('GET', '/_ping')).toEqual({ status: 200, body: 'OK' });
      expect(d.process.exitCode).toBeNull();
      const line = d.log().split('\n').find((l) => l.includes('uncaught exception in a request'));
      expect(line, d.log()).toBeDefined();
      expect(line).toContain('/events');
      expect(line).toContain('failpoint api.events.untilTimer');
    } finally {
      await d.cleanup();
    }
  });

  it('an error of unknown origin exits 70 at once; the containers keep running and the next berthd serves them', { timeout: 120_000 }, async () => {
    const dir = fs.mkdtempSync(path.join('/tmp', 'bd-guard-'));
    // A fault outside any request: a signal handler that throws (loaded before berthd).
    const inject = path.join(dir, 'fault.mjs');
    fs.writeFileSync(inject, "process.on('SIGUSR2', () => { throw new Error('fault of unknown origin'); });\n");
    let d = await startBerthd({ dir, env: { NODE_OPTIONS: `--import=${inject}` } });
    try {
      await d.loadTestImage();
      const run = await d.docker(['run', '-d', '--name', 'survivor', TEST_IMAGE, 'sleep', '1000']);
      expect(run.code, run.stderr).toBe(0);
      d.process.kill('SIGUSR2');
      const exit = await d.exited();
      expect(exit).toEqual({ code: 70, signal: null });
      expect(d.log()).toContain('uncaught exception of unknown origin');
      expect(d.log()).toContain('fault of unknown origin');
      // no graceful shutdown: the container was not stopped
      expect(conmons(d.execRoot).length).toBeGreaterThan(0);
      d = await startBerthd({ dir });
      const ps = await d.docker(['ps', '--format', '{{.Names}} {{.State}}']);
      expect(ps.stdout).toBe('survivor running\n');
      expect((await d.docker(['rm', '-f', 'survivor'])).code).toBe(0);
    } finally {
      await d.cleanup();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
