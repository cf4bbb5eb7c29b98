/**
 * Health checks through the real docker CLI against berthd (runc + conmon): `--health-cmd`
 * probes run in the container (exec) and drive State.Health starting → unhealthy → healthy,
 * `docker ps` shows "(healthy)", `--filter health=`, `docker inspect` State.Health, `docker
 * events` health_status; a probe that hangs past `--health-timeout` is killed (its process is
 * gone from the container) and counted; an image's Healthcheck (committed from a container)
 * runs for a new container unless `--no-healthcheck`; after a berthd restart (live restore) the
 * stored Health is kept and the monitor goes on; berthd killed at failpoint `health.beforeSave`
 * comes back with a readable, truthful Health and a monitor that runs. Waits poll the state with
 * a deadline; nothing asserts how long anything took.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRfc3339Nano } from '@berth/core';
import { TEST_IMAGE, berthdSkipReason, removeTestImageTarball, startBerthd, type Berthd } from './helpers/berthd.js';
import { runFailpointRow } from './helpers/failpoints.js';

const skip = berthdSkipReason();

interface Health {
  Status: string;
  FailingStreak: number;
  Log: Array<{ Start: string; End: string; ExitCode: number; Output: string }>;
}

async function healthOf(d: Berthd, name: string): Promise<Health | null> {
  const r = await d.docker(['inspect', '--format', '{{json .State.Health}}', name]);
  expect(r.code, JSON.stringify(r)).toBe(0);
  return JSON.parse(r.stdout) as Health | null;
}

/** Polls `docker inspect` until `ok(health)`; fails with the last Health after `timeoutMs`. */
async function waitHealth(d: Berthd, name: string, ok: (h: Health) => boolean, timeoutMs = 30_000): Promise<Health> {
  const deadline = Date.now() + timeoutMs;
  let last: Health | null = null;
  for (;;) {
    last = await healthOf(d, name);
    if (last && ok(last)) return last;
    if (Date.now() > deadline) throw new Error(`${name}: health never matched; last ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A Log entry's time in ns (RFC 3339 strings with trimmed fractions do not sort as text). */
const nanos = (t: string): bigint => parseRfc3339Nano(t) ?? -1n;

const run = async (d: Berthd, args: string[]) => {
  const r = await d.docker(['run', '-d', '--network', 'none', ...args]);
  expect(r.code, JSON.stringify(r)).toBe(0);
  return r.stdout.trim();
};

describe.skipIf(skip)(`health checks through the docker CLI${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let d: Berthd;
  let dir: string;
  beforeAll(async () => {
    d = await startBerthd({ args: ['--live-restore'] });
    dir = d.dir;
    await d.loadTestImage();
  }, 120_000);
  afterAll(async () => {
    await d?.docker(['rm', '-f', 'hc-ok', 'hc-hang', 'hc-img', 'hc-none']).catch(() => {});
    await d?.cleanup();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    removeTestImageTarball();
  }, 120_000);

  it('starting → unhealthy → healthy: inspect, ps Status, the health filter and health_status events', async () => {
    const since = Math.floor(Date.now() / 1000) - 1;
    await run(d, ['--name', 'hc-ok', '--health-cmd', 'test -f /tmp/ok', '--health-interval', '200ms', '--health-retries', '2', TEST_IMAGE, 'sleep', '1000']);
    const cfg = await d.docker(['inspect', '--format', '{{json .Config.Healthcheck}}', 'hc-ok']);
    expect(JSON.parse(cfg.stdout)).toEqual({ Test: ['CMD-SHELL', 'test -f /tmp/ok'], Interval: 200_000_000, Retries: 2 });

    const bad = await waitHealth(d, 'hc-ok', (h) => h.Status === 'unhealthy');
    expect(bad.FailingStreak).toBeGreaterThanOrEqual(2);
    expect(bad.Log.at(-1)!.ExitCode).toBe(1);
    const ps1 = await d.docker(['ps', '--filter', 'name=hc-ok', '--format', '{{.Status}}']);
    expect(ps1.stdout.trim()).toMatch(/^Up .+ \(unhealthy\)$/);

    expect((await d.docker(['exec', 'hc-ok', 'touch', '/tmp/ok'])).code).toBe(0);
    const good = await waitHealth(d, 'hc-ok', (h) => h.Status === 'healthy');
    expect(good.FailingStreak).toBe(0);
    expect(good.Log.length).toBeLessThanOrEqual(5);
    expect(good.Log.at(-1)).toMatchObject({ ExitCode: 0, Output: '' });
    expect(Date.parse(good.Log.at(-1)!.End)).toBeGreaterThanOrEqual(Date.parse(good.Log.at(-1)!.Start));

    const ps2 = await d.docker(['ps', '--filter', 'name=hc-ok', '--format', '{{.Status}}']);
    expect(ps2.stdout.trim()).toMatch(/^Up .+ \(healthy\)$/);
    const healthy = await d.docker(['ps', '--filter', 'health=healthy', '--format', '{{.Names}}']);
    expect(healthy.stdout.split('\n')).toContain('hc-ok');
    const unhealthy = await d.docker(['ps', '--filter', 'health=unhealthy', '--format', '{{.Names}}']);
    expect(unhealthy.stdout.split('\n')).not.toContain('hc-ok');

    const until = Math.ceil(Date.now() / 1000) + 1;
    const ev = await d.docker(['events', '--since', String(since), '--until', String(until), '--filter', 'container=hc-ok', '--filter', 'event=health_status', '--format', '{{.Action}}']);
    expect(ev.code, JSON.stringify(ev)).toBe(0);
    expect(ev.stdout.trim().split('\n')).toEqual(['health_status: unhealthy', 'health_status: healthy']);
    // each probe is an exec of its own, as with dockerd
    const execs = await d.docker(['events', '--since', String(since), '--until', String(until), '--filter', 'container=hc-ok', '--filter', 'event=exec_create', '--format', '{{.Action}}']);
    expect(execs.stdout.trim().split('\n')[0]).toBe('exec_create: /bin/sh -c test -f /tmp/ok');
  }, 120_000);

  it('a probe that hangs past --health-timeout is killed and counted as a failure', async () => {
    await run(d, ['--name', 'hc-hang', '--health-cmd', 'sleep 100', '--health-timeout', '300ms', '--health-interval', '200ms', '--health-retries', '1', TEST_IMAGE, 'sleep', '1000']);
    const h = await waitHealth(d, 'hc-hang', (x) => x.Log.length >= 3);
    expect(h.Status).toBe('unhealthy');
    for (const l of h.Log) expect(l).toMatchObject({ ExitCode: -1, Output: 'Health check exceeded timeout (300ms)' });
    // three probes have timed out: had they been left running there would be three `sleep 100`;
    // at most the probe running right now may be there
    const ps = await d.docker(['exec', 'hc-hang', 'ps', '-o', 'pid,args']);
    expect(ps.code, JSON.stringify(ps)).toBe(0);
    expect(ps.stdout.split('\n').filter((l) => /sleep 100$/.test(l.trim())).length).toBeLessThanOrEqual(1);
    // stopping the container stops the monitor: dockerd then reports it unhealthy
    expect((await d.docker(['stop', '-t', '1', 'hc-hang'])).code).toBe(0);
    expect((await healthOf(d, 'hc-hang'))!.Status).toBe('unhealthy');
  }, 120_000);

  it("an image's Healthcheck runs for a new container; --no-healthcheck turns it off", async () => {
    const commit = await d.docker(['commit', 'hc-ok', 'berth-test/hc:latest']);
    expect(commit.code, JSON.stringify(commit)).toBe(0);
    const img = await d.docker(['image', 'inspect', '--format', '{{json .Config.Healthcheck}}', 'berth-test/hc:latest']);
    expect(JSON.parse(img.stdout)).toMatchObject({ Test: ['CMD-SHELL', 'test -f /tmp/ok'], Interval: 200_000_000 });
    await run(d, ['--name', 'hc-img', 'berth-test/hc:latest', 'sleep', '1000']);
    await waitHealth(d, 'hc-img', (h) => h.Status === 'healthy'); // /tmp/ok is in the committed layer
    await run(d, ['--name', 'hc-none', '--no-healthcheck', 'berth-test/hc:latest', 'sleep', '1000']);
    const none = await d.docker(['inspect', '--format', '{{json .Config.Healthcheck.Test}} {{json .State.Health}}', 'hc-none']);
    expect(none.stdout.trim()).toBe('["NONE"] null');
    const ps = await d.docker(['ps', '--filter', 'health=none', '--format', '{{.Names}}']);
    expect(ps.stdout.split('\n')).toContain('hc-none');
    expect((await d.docker(['rm', '-f', 'hc-img', 'hc-none'])).code).toBe(0);
    expect((await d.docker(['rmi', 'berth-test/hc:latest'])).code).toBe(0);
  }, 120_000);

  it('after a berthd restart (live restore) the stored Health is kept and the monitor goes on', async () => {
    const before = await waitHealth(d, 'hc-ok', (h) => h.Status === 'healthy');
    expect(await d.stop()).toBe(0);
    d = await startBerthd({ dir, args: ['--live-restore'] });
    const after = await healthOf(d, 'hc-ok');
    expect(after!.Status).toBe('healthy');
    // the Log saved before the restart is there (the old daemon may have added results after `before`)
    expect(nanos(after!.Log.at(-1)!.Start) >= nanos(before.Log.at(-1)!.Start)).toBe(true);
    expect((await d.docker(['exec', 'hc-ok', 'rm', '/tmp/ok'])).code).toBe(0);
    await waitHealth(d, 'hc-ok', (h) => h.Status === 'unhealthy');
  }, 120_000);
});

describe.skipIf(skip)(`health checks and a berthd killed while saving a probe result${skip ? ` (skipped: ${skip})` : ''}`, () => {
  afterAll(removeTestImageTarball);
  it('health.beforeSave', () =>
    runFailpointRow<{ id: string }>({
      point: 'health.beforeSave',
      prepare: async (d) => {
        const id = await run(d, ['--name', 'hc-fp', '--health-cmd', 'true', '--health-interval', '200ms', TEST_IMAGE, 'sleep', '1000']);
        await waitHealth(d, 'hc-fp', (h) => h.Status === 'healthy');
        return { id };
      },
      // the restored monitor's next probe result reaches the point
      trigger: (d) => d.docker(['inspect', 'hc-fp']),
      verify: async (d, ctx) => {
        const stored = JSON.parse(fs.readFileSync(path.join(d.dataRoot, 'containers', ctx.id, 'config.v2.json'), 'utf8'));
        expect(stored.State.Health.Status).toBe('healthy');
        const first = await healthOf(d, 'hc-fp');
        expect(first!.Status).toBe('healthy');
        const lastStart = nanos(first!.Log.at(-1)!.Start);
        // the monitor runs again: a new result after the ones saved before the crash
        await waitHealth(d, 'hc-fp', (h) => nanos(h.Log.at(-1)!.Start) > lastStart && h.Status === 'healthy');
        const ps = await d.docker(['ps', '--filter', 'name=hc-fp', '--format', '{{.Status}}']);
        expect(ps.stdout.trim()).toMatch(/^Up .+ \(healthy\)$/);
      },
    }), 180_000);
});
