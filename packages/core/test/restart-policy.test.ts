import { afterEach, describe, expect, it } from 'vitest';
import { createTestEngine, type TestEngine } from '../../testing/src/index.js';
import { definePlugin } from '../src/index.js';

let t: TestEngine | undefined;
afterEach(async () => {
  await t?.dispose();
  t = undefined;
});

const until = async (cond: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('restart policies (dockerd restart manager)', () => {
  it('on-failure:2 restarts a failing container twice with a doubling backoff, then leaves it exited', async () => {
    t = await createTestEngine({ specDefaults: false });
    t.fake.script('*', { runFor: 5, exitCode: 1 });
    const id = await t.createContainer({ HostConfig: { RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 2 } } });
    const starts: number[] = [];
    t.engine.events.subscribe((e) => e.Action === 'start' && starts.push(Date.now()));
    await t.engine.containers.start(id);
    await until(() => starts.length === 3 && t!.engine.containers.get(id).State.Status === 'exited');
    await new Promise((r) => setTimeout(r, 300));
    expect(starts).toHaveLength(3);
    const r = t.engine.containers.get(id);
    expect(r.RestartCount).toBe(2);
    expect(r.State).toMatchObject({ Status: 'exited', ExitCode: 1, Restarting: false, Running: false });
    // 100 ms, then 200 ms (plus the 5 ms run)
    expect(starts[1]! - starts[0]!).toBeGreaterThanOrEqual(100);
    expect(starts[2]! - starts[1]!).toBeGreaterThanOrEqual(200);
    expect(t.engine.events.history().map((e) => e.Action).filter((a) => a === 'die')).toHaveLength(3);
  });

  it('on-failure does not restart after exit code 0; no never restarts', async () => {
    t = await createTestEngine({ specDefaults: false });
    t.fake.script('*', { runFor: 5, exitCode: 0 });
    const a = await t.createContainer({ HostConfig: { RestartPolicy: { Name: 'on-failure' } } });
    const b = await t.createContainer();
    await t.engine.containers.start(a);
    await t.engine.containers.start(b);
    await t.engine.containers.wait(a);
    await t.engine.containers.wait(b);
    await new Promise((r) => setTimeout(r, 200));
    expect(t.fake.callsOf('start')).toHaveLength(2);
  });

  it('always: restarts after any exit; a stop during the backoff ends it (state exited, no more restarts)', async () => {
    t = await createTestEngine({ specDefaults: false });
    t.fake.script('*', { runFor: 5, exitCode: 0 });
    const id = await t.createContainer({ HostConfig: { RestartPolicy: { Name: 'always' } } });
    const next = t.engine.containers.wait(id, 'next-exit');
    await t.engine.containers.start(id);
    expect(await next).toEqual({ StatusCode: 0 });
    await until(() => t!.engine.containers.get(id).State.Status === 'restarting');
    expect(t.engine.containers.get(id).State).toMatchObject({ Running: true, Restarting: true, Pid: 0 });
    await t.engine.containers.stop(id);
    expect(t.engine.containers.get(id).State).toMatchObject({ Status: 'exited', Restarting: false, Running: false });
    const startsNow = t.fake.callsOf('start').length;
    await new Promise((r) => setTimeout(r, 300));
    expect(t.fake.callsOf('start')).toHaveLength(startsNow);
    expect(t.engine.events.history().at(-1)!.Action).toBe('stop');
  });

  it('a stop of a running always-container does not restart it; kill -9 neither; a signal that is not a stop signal does', async () => {
    t = await createTestEngine({ specDefaults: false });
    const id = await t.createContainer({ HostConfig: { RestartPolicy: { Name: 'always' } } });
    await t.engine.containers.start(id);
    await t.engine.containers.stop(id, { timeout: 1 });
    await new Promise((r) => setTimeout(r, 200));
    expect(t.engine.containers.get(id).State.Status).toBe('exited');
    await t.engine.containers.start(id);
    await t.engine.containers.kill(id, 'KILL');
    await new Promise((r) => setTimeout(r, 200));
    expect(t.engine.containers.get(id).State.Status).toBe('exited');
    await t.engine.containers.start(id);
    await t.engine.containers.kill(id, 'USR1'); // the fake dies of it: 128+10
    await until(() => t!.engine.containers.get(id).RestartCount === 1 && t!.engine.containers.get(id).State.Status === 'running');
  });

  it('remove -f of a container waiting for its restart removes it and cancels the restart', async () => {
    t = await createTestEngine({ specDefaults: false });
    t.fake.script('*', { runFor: 5, exitCode: 3 });
    const id = await t.createContainer({ HostConfig: { RestartPolicy: { Name: 'always' } } });
    await t.engine.containers.start(id);
    await until(() => t!.engine.containers.get(id).State.Status === 'restarting');
    await expect(t.engine.containers.remove(id)).rejects.toThrow('container is restarting');
    await t.engine.containers.remove(id, { force: true });
    await new Promise((r) => setTimeout(r, 300));
    expect(t.engine.containers.has(id)).toBe(false);
    expect(t.fake.callsOf('start')).toHaveLength(1);
  });

  it('the shouldRestart hook can override the policy', async () => {
    const seen: Array<{ exitCode: number; policy: boolean }> = [];
    const p = definePlugin({
      name: 'no-crashloop',
      type: 'io.berth.lifecycle.v1',
      apply(hooks) {
        hooks.shouldRestart.tapPromise('no-crashloop', async (d) => {
          seen.push({ exitCode: d.exitCode, policy: d.policy });
          return d.exitCode === 42 ? false : undefined;
        });
      },
    });
    t = await createTestEngine({ specDefaults: false, plugins: [p] });
    t.fake.script('*', { runFor: 5, exitCode: 42 });
    const id = await t.createContainer({ HostConfig: { RestartPolicy: { Name: 'always' } } });
    await t.engine.containers.start(id);
    await t.engine.containers.wait(id);
    await new Promise((r) => setTimeout(r, 200));
    expect(seen).toEqual([{ exitCode: 42, policy: true }]);
    expect(t.engine.containers.get(id).State).toMatchObject({ Status: 'exited', ExitCode: 42 });
  });

  it('at engine start: always and unless-stopped containers come back, unless-stopped ones stopped by hand do not', async () => {
    t = await createTestEngine({ specDefaults: false });
    const always = await t.createContainer({ name: 'always', HostConfig: { RestartPolicy: { Name: 'always' } } });
    const unless = await t.createContainer({ name: 'unless', HostConfig: { RestartPolicy: { Name: 'unless-stopped' } } });
    const unlessStopped = await t.createContainer({ name: 'unless-stopped', HostConfig: { RestartPolicy: { Name: 'unless-stopped' } } });
    const never = await t.createContainer({ name: 'never-started', HostConfig: { RestartPolicy: { Name: 'always' } } });
    for (const id of [always, unless, unlessStopped]) await t.engine.containers.start(id);
    await t.engine.containers.stop(unlessStopped, { timeout: 1 });
    await t.engine.close();
    // The host rebooted: the backend lost everything.
    for (const id of [always, unless]) t.fake.forget(id);
    await t.restart();
    const st = (id: string) => t!.engine.containers.get(id).State.Status;
    expect(st(always)).toBe('running');
    expect(st(unless)).toBe('running');
    expect(st(unlessStopped)).toBe('exited');
    expect(st(never)).toBe('created');
  });

  it('a daemon shutdown without live restore stops containers without counting as stopped by hand', async () => {
    t = await createTestEngine({ specDefaults: false });
    const unless = await t.createContainer({ name: 'unless', HostConfig: { RestartPolicy: { Name: 'unless-stopped' } } });
    const plain = await t.createContainer({ name: 'plain' });
    await t.engine.containers.start(unless);
    await t.engine.containers.start(plain);
    await t.engine.shutdown({ liveRestore: false, timeout: 1 });
    expect(t.fake.containers.has(unless)).toBe(false);
    expect(t.fake.containers.has(plain)).toBe(false);
    await t.restart();
    expect(t.engine.containers.get(unless).State.Status).toBe('running');
    expect(t.engine.containers.get(plain).State).toMatchObject({ Status: 'exited', ExitCode: 143 });
    expect(t.engine.containers.get(plain).HasBeenManuallyStopped).toBe(false);
  });

  it('a shutdown with live restore leaves the containers running', async () => {
    t = await createTestEngine({ specDefaults: false, liveRestore: true });
    const id = await t.createContainer();
    await t.engine.containers.start(id);
    await t.engine.shutdown();
    expect(t.fake.containers.get(id)!.status).toBe('running');
  });
});
