/**
 * Health checks (core/src/health.ts) on the FakeRuntime: probes through exec, State.Health as
 * dockerd keeps it (status, streak, the last 5 results, output cut at 4096 bytes), the
 * health_status events, a probe past its timeout killed and counted, monitors that stop with
 * the container (pause, stop) and come back on unpause and after an engine restart. Intervals
 * are 1 ms and every wait is for an event or a state, never for a wall-clock time.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeRuntime, createTestEngine, type TestEngine } from '../../testing/src/index.js';
import {
  HEALTH_DEFAULTS,
  MAX_HEALTH_LOG,
  MAX_PROBE_OUTPUT,
  ProbeOutput,
  applyProbeResult,
  goDuration,
  mergeImageConfigIntoContainer,
  probeCommand,
  setFailpointsForTest,
  type DockerEvent,
  type Engine,
  type ExecOptions,
  type ExecSession,
  type HealthConfig,
  type HealthState,
} from '../src/index.js';

const MS = 1_000_000;

let t: TestEngine | undefined;
afterEach(async () => {
  setFailpointsForTest(undefined);
  await t?.dispose();
  t = undefined;
});

/** The next container event whose action passes `match` (subscribed before `action` runs). */
async function nextEvent(engine: Engine, id: string, match: (action: string) => boolean, action: () => unknown = () => {}): Promise<DockerEvent> {
  let unsubscribe = () => {};
  const seen = new Promise<DockerEvent>((resolve) => {
    unsubscribe = engine.events.subscribe((e) => {
      if (e.Type === 'container' && e.Actor.ID === id && match(e.Action)) resolve(e);
    });
  });
  try {
    await action();
    return await seen;
  } finally {
    unsubscribe();
  }
}

const healthStatus = (s: string) => (a: string) => a === `health_status: ${s}`;

async function probed(hc: HealthConfig, extra: Record<string, unknown> = {}): Promise<string> {
  t = await createTestEngine({ specDefaults: false });
  return t.createContainer({ Config: { Cmd: ['/bin/app'], Healthcheck: { Interval: MS, ...hc }, ...extra } });
}

const health = (id: string): HealthState => t!.engine.containers.get(id).State.Health!;

describe('probeCommand: CMD, CMD-SHELL, NONE', () => {
  it('runs CMD as is and CMD-SHELL under Config.Shell or /bin/sh -c; NONE, nothing or an unknown type is no probe', () => {
    expect(probeCommand({ Healthcheck: { Test: ['CMD', 'test', '-f', '/ok'] } })).toEqual(['test', '-f', '/ok']);
    expect(probeCommand({ Healthcheck: { Test: ['CMD-SHELL', 'test -f /ok'] } })).toEqual(['/bin/sh', '-c', 'test -f /ok']);
    expect(probeCommand({ Healthcheck: { Test: ['CMD-SHELL', 'x'] }, Shell: ['/bin/bash', '-ec'] })).toEqual(['/bin/bash', '-ec', 'x']);
    expect(probeCommand({ Healthcheck: { Test: ['NONE'] } })).toBeNull();
    expect(probeCommand({ Healthcheck: { Test: [] } })).toBeNull();
    expect(probeCommand({})).toBeNull();
    expect(probeCommand({ Healthcheck: { Test: ['HTTP', '/'] } })).toBeNull();
    expect(probeCommand({ Healthcheck: { Test: ['CMD'] } })).toEqual([]);
  });

  it("--no-healthcheck (Test [NONE]) wins over the image's HEALTHCHECK; other fields are filled from the image", () => {
    const image = { Healthcheck: { Test: ['CMD', 'true'], Interval: 5 * MS, Retries: 4 } };
    expect(probeCommand(mergeImageConfigIntoContainer({ Healthcheck: { Test: ['NONE'] } }, image))).toBeNull();
    const merged = mergeImageConfigIntoContainer({ Healthcheck: { Timeout: 2 * MS } }, image);
    expect(merged.Healthcheck).toEqual({ Test: ['CMD', 'true'], Interval: 5 * MS, Timeout: 2 * MS, Retries: 4 });
    expect(probeCommand(merged)).toEqual(['true']);
  });
});

describe('goDuration: timeouts printed as Go does', () => {
  it.each([
    [300 * MS, '300ms'],
    [30_000 * MS, '30s'],
    [90_000 * MS, '1m30s'],
    [3_600_000 * MS, '1h0m0s'],
    [1_500 * MS, '1.5s'],
    [1_500, '1.5µs'],
    [1, '1ns'],
    [0, '0s'],
  ])('%d ns → %s', (ns, text) => expect(goDuration(ns)).toBe(text));
});

describe('ProbeOutput: at most 4096 bytes, then "..."', () => {
  it('keeps stdout and stderr in the order written and marks a cut', () => {
    const out = new ProbeOutput();
    out.write('a');
    out.write(Buffer.alloc(MAX_PROBE_OUTPUT, 'b'));
    expect(out.text()).toBe('a' + 'b'.repeat(MAX_PROBE_OUTPUT - 1) + '...');
    const small = new ProbeOutput();
    small.write('ok\n');
    expect(small.text()).toBe('ok\n');
  });
});

describe('applyProbeResult: the status rules of dockerd', () => {
  const entry = (code: number) => ({ Start: 'x', End: 'y', ExitCode: code, Output: '' });

  it('counts failures only after the start period, Retries in a row → unhealthy, one success resets', () => {
    const h: HealthState = { Status: 'starting', FailingStreak: 0, Log: [] };
    const hc = { Retries: 2, StartPeriod: 1000 };
    applyProbeResult(h, hc, entry(1), 0n, 999n); // inside the start period
    expect(h).toMatchObject({ Status: 'starting', FailingStreak: 0 });
    applyProbeResult(h, hc, entry(1), 0n, 1000n);
    expect(h).toMatchObject({ Status: 'starting', FailingStreak: 1 });
    applyProbeResult(h, hc, entry(2), 0n, 1001n); // any non-zero exit is a failure
    expect(h).toMatchObject({ Status: 'unhealthy', FailingStreak: 2 });
    expect(applyProbeResult(h, hc, entry(0), 0n, 1002n)).toBe('unhealthy');
    expect(h).toMatchObject({ Status: 'healthy', FailingStreak: 0 });
    expect(h.Log.map((l) => l.ExitCode)).toEqual([1, 1, 2, 0]);
  });

  it('a healthy container that fails inside its start period still counts the failure; the default is 3 retries; the Log keeps 5', () => {
    const h: HealthState = { Status: 'healthy', FailingStreak: 0, Log: [] };
    for (let i = 0; i < HEALTH_DEFAULTS.retries - 1; i++) applyProbeResult(h, { StartPeriod: 1e12 }, entry(1), 0n, 1n);
    expect(h).toMatchObject({ Status: 'healthy', FailingStreak: HEALTH_DEFAULTS.retries - 1 });
    applyProbeResult(h, { StartPeriod: 1e12 }, entry(1), 0n, 1n);
    expect(h.Status).toBe('unhealthy');
    for (let i = 0; i < 10; i++) applyProbeResult(h, {}, entry(i), 0n, 1n);
    expect(h.Log.map((l) => l.ExitCode)).toEqual([5, 6, 7, 8, 9]);
    expect(h.Log).toHaveLength(MAX_HEALTH_LOG);
  });
});

describe('the health monitor of a running container', () => {
  it('goes starting → unhealthy → healthy with events, probes through exec, and saves State.Health', async () => {
    const id = await probed({ Test: ['CMD', 'test', '-f', '/tmp/ok'], Retries: 2 });
    t!.fake.script(id, { execExitCode: 1, execOutput: 'no\n' });
    const creates: string[] = [];
    t!.engine.events.subscribe((e) => e.Actor.ID === id && e.Action.startsWith('exec_create') && creates.push(e.Action));
    await nextEvent(t!.engine, id, healthStatus('unhealthy'), () => t!.engine.containers.start(id));
    let h = health(id);
    expect(h.Status).toBe('unhealthy');
    expect(h.FailingStreak).toBeGreaterThanOrEqual(2);
    expect(h.Log[0]).toMatchObject({ ExitCode: 1, Output: 'no\n' });
    expect(Date.parse(h.Log[0]!.End)).toBeGreaterThanOrEqual(Date.parse(h.Log[0]!.Start));
    expect(creates[0]).toBe('exec_create: test -f /tmp/ok');

    t!.fake.script(id, { execExitCode: 0, execOutput: '' });
    await nextEvent(t!.engine, id, healthStatus('healthy'));
    h = health(id);
    expect(h).toMatchObject({ Status: 'healthy', FailingStreak: 0 });
    expect(h.Log.at(-1)!.ExitCode).toBe(0);
    expect(h.Log.length).toBeLessThanOrEqual(MAX_HEALTH_LOG);
    // saved with the record
    await nextEvent(t!.engine, id, (a) => a === 'exec_die'); // one more probe ran, so the healthy result was saved before it
    const onDisk = JSON.parse(await readFile(join(t!.dataRoot, 'containers', id, 'config.v2.json'), 'utf8'));
    expect(onDisk.State.Health.Status).toBe('healthy');
  });

  it('a start sets Health to starting (saved), before any probe has run', async () => {
    const id = await probed({ Test: ['CMD', 'true'], Interval: 3_600_000 * MS });
    await t!.engine.containers.start(id);
    expect(health(id)).toEqual({ Status: 'starting', FailingStreak: 0, Log: [] });
    const onDisk = JSON.parse(await readFile(join(t!.dataRoot, 'containers', id, 'config.v2.json'), 'utf8'));
    expect(onDisk.State.Health).toEqual({ Status: 'starting', FailingStreak: 0, Log: [] });
    expect(t!.fake.calls.filter((c) => c.method === 'exec')).toEqual([]);
  });

  it('kills a probe that outlives its timeout and counts it as a failure with dockerd\'s message', async () => {
    const id = await probed({ Test: ['CMD-SHELL', 'sleep 100'], Timeout: MS, Retries: 1 });
    t!.fake.script(id, { execRunFor: 1e9 });
    await nextEvent(t!.engine, id, healthStatus('unhealthy'), () => t!.engine.containers.start(id));
    expect(health(id).Log[0]).toMatchObject({ ExitCode: -1, Output: 'Health check exceeded timeout (1ms)' });
    const kills = t!.fake.calls.filter((c) => c.method === 'kill' && c.id === id);
    expect(kills[0]!.args[0]).toBe(9);
    // the killed probe is gone (at most the next probe is running now)
    expect(t!.fake.runningExecs()).not.toContain(kills[0]!.args[1]);
  });

  it('on a backend whose exec sessions cannot be killed, a probe past its timeout is counted and left, with one warning', async () => {
    class NoKill extends FakeRuntime {
      override async exec(id: string, opts: ExecOptions): Promise<ExecSession> {
        const { pid, exited } = await super.exec(id, opts);
        return { pid, exited };
      }
    }
    const fake = new NoKill();
    t = await createTestEngine({ specDefaults: false, runtime: fake });
    const id = await t.createContainer({ Config: { Cmd: ['/bin/app'], Healthcheck: { Test: ['CMD', 'sleep', '100'], Interval: MS, Timeout: MS, Retries: 2 } } });
    fake.script(id, { execRunFor: 1e9 });
    await nextEvent(t.engine, id, healthStatus('unhealthy'), () => t!.engine.containers.start(id));
    expect(health(id).Log.every((l) => l.ExitCode === -1)).toBe(true);
    expect(fake.runningExecs().length).toBeGreaterThanOrEqual(2);
    expect(t.logger.entries.filter((e) => e.msg.includes('cannot kill an exec'))).toHaveLength(1);
  });

  it('a probe that cannot run is a failure with the error as its output', async () => {
    const id = await probed({ Test: ['CMD', 'nope'], Retries: 1 });
    t!.fake.fail('exec', 'exec: "nope": executable file not found in $PATH', { times: Infinity, id });
    await nextEvent(t!.engine, id, healthStatus('unhealthy'), () => t!.engine.containers.start(id));
    expect(health(id).Log[0]!.ExitCode).toBe(-1);
    expect(health(id).Log[0]!.Output).toContain('executable file not found');
  });

  it('stops with the container (Health then says unhealthy) and starts again fresh with a new start', async () => {
    const id = await probed({ Test: ['CMD', 'true'] });
    await nextEvent(t!.engine, id, healthStatus('healthy'), () => t!.engine.containers.start(id));
    await t!.engine.containers.stop(id, { timeout: 0 });
    expect(health(id).Status).toBe('unhealthy');
    const onDisk = JSON.parse(await readFile(join(t!.dataRoot, 'containers', id, 'config.v2.json'), 'utf8'));
    expect(onDisk.State.Health.Status).toBe('unhealthy');
    await nextEvent(t!.engine, id, healthStatus('healthy'), () => t!.engine.containers.start(id));
  });

  it('pause stops the monitor (unhealthy, as dockerd), unpause starts it again', async () => {
    const id = await probed({ Test: ['CMD', 'true'] });
    await nextEvent(t!.engine, id, healthStatus('healthy'), () => t!.engine.containers.start(id));
    await t!.engine.containers.pause(id);
    expect(health(id).Status).toBe('unhealthy');
    await nextEvent(t!.engine, id, healthStatus('healthy'), () => t!.engine.containers.unpause(id));
  });

  it('probes every StartInterval while starting within the start period (Interval is an hour here)', async () => {
    const id = await probed({ Test: ['CMD', 'true'], Interval: 3_600_000 * MS, StartPeriod: 3_600_000 * MS, StartInterval: MS });
    t!.fake.script(id, { execExitCode: 1 });
    const twice = new Promise<void>((resolve) => {
      let n = 0;
      const off = t!.engine.events.subscribe((e) => e.Actor.ID === id && e.Action === 'exec_die' && ++n === 2 && (off(), resolve()));
    });
    await t!.engine.containers.start(id);
    await twice;
    // failures inside the start period do not count
    expect(health(id)).toMatchObject({ Status: 'starting', FailingStreak: 0 });
    t!.fake.script(id, { execExitCode: 0 });
    await nextEvent(t!.engine, id, healthStatus('healthy'));
  });

  it('a restart by the restart policy starts the monitor afresh', async () => {
    t = await createTestEngine({ specDefaults: false });
    const id = await t.createContainer({ Config: { Cmd: ['/bin/app'], Healthcheck: { Test: ['CMD', 'true'], Interval: MS } }, HostConfig: { RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 1 } } });
    await nextEvent(t.engine, id, healthStatus('healthy'), () => t!.engine.containers.start(id));
    // Health as the policy's start finds it (the start event comes before the monitor's reset)
    const atRestart: HealthState[] = [];
    t.engine.events.subscribe((e) => e.Actor.ID === id && e.Action === 'start' && atRestart.push(structuredClone(health(id))));
    // the process fails: the policy restarts it, and the monitor comes back from starting
    await nextEvent(t.engine, id, healthStatus('healthy'), () => t!.fake.exit(id, 1));
    expect(atRestart[0]?.Status).toBe('unhealthy'); // the monitor stopped at the exit
    expect(t.engine.containers.get(id).RestartCount).toBe(1);
  });

  it('runs no probe for NONE: no exec, no State.Health', async () => {
    const id = await probed({ Test: ['NONE'] });
    await t!.engine.containers.start(id);
    expect(t!.engine.containers.get(id).State.Health).toBeUndefined();
    expect(t!.fake.calls.filter((c) => c.method === 'exec')).toEqual([]);
  });

  it('keeps monitoring after an engine restart, with the stored Health kept', async () => {
    const id = await probed({ Test: ['CMD', 'true'], Retries: 1 });
    await nextEvent(t!.engine, id, healthStatus('healthy'), () => t!.engine.containers.start(id));
    const engine = await t!.restart();
    const h = engine.containers.get(id).State.Health!;
    expect(h.Status).toBe('healthy');
    expect(h.Log.length).toBeGreaterThan(0);
    t!.fake.script(id, { execExitCode: 1 });
    await nextEvent(engine, id, healthStatus('unhealthy'));
  });

  it('a failing save of a probe result (failpoint health.beforeSave) is logged; the monitor goes on', async () => {
    setFailpointsForTest('health.beforeSave=error');
    const id = await probed({ Test: ['CMD', 'true'] });
    await nextEvent(t!.engine, id, healthStatus('healthy'), () => t!.engine.containers.start(id));
    t!.fake.script(id, { execExitCode: 1 });
    await nextEvent(t!.engine, id, healthStatus('unhealthy'));
    expect(t!.logger.entries.some((e) => e.msg === 'saving health state failed')).toBe(true);
  });
});
