/**
 * Exec records across a daemon restart (issue 13, FakeRuntime): they are kept with their
 * container (`execs.json`), so inspect still answers after a restart; an exec running across it
 * stays running and its exit code is the real one, whether it ends after the restart or while
 * the engine was down; one the backend no longer knows is reported lost (255), never as 0; a
 * backend drops its copy of an exit only once the exit is saved; execs go with `rm` and are
 * pruned in dockerd's two collector passes.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createTestEngine, type TestEngine } from '../../testing/src/index.js';
import { EXIT_CODE_UNKNOWN, type ExecRecord } from '../src/index.js';
import { EXECS_FILE } from '../src/exec-store.js';

let t: TestEngine | undefined;
afterEach(async () => {
  await t?.dispose();
  t = undefined;
});

/** Polls (bounded) until `check` holds: exits arrive from the fake's timers. */
async function until(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function runningContainer(te: TestEngine): Promise<string> {
  const id = await te.createContainer({ Config: { Cmd: ['sleep'] } });
  await te.engine.containers.start(id);
  return id;
}

function storedExecs(te: TestEngine, id: string): ExecRecord[] {
  return JSON.parse(readFileSync(join(te.dataRoot, 'containers', id, EXECS_FILE), 'utf8')) as ExecRecord[];
}

describe('exec records survive a restart', () => {
  it('inspect answers after a restart with what it answered before (finished and never started execs)', async () => {
    t = await createTestEngine({ specDefaults: false });
    t.fake.script('*', { execExitCode: 3 });
    const id = await runningContainer(t);
    const done = await t.engine.execs.create(id, { Cmd: ['ls', '-l'], AttachStdout: true, AttachStderr: true, DetachKeys: 'ctrl-x', Tty: true, User: 'nobody' });
    expect(await (await t.engine.execs.start(done.Id)).exited).toBe(3);
    await until('the exit to be recorded', () => t!.engine.execs.inspect(done.Id).ExitCode === 3);
    const later = await t.engine.execs.create(id, { Cmd: ['echo', 'later'] });
    const before = t.engine.execs.inspect(done.Id);

    await t.restart();
    expect(t.engine.execs.inspect(done.Id)).toEqual(before);
    expect(t.engine.execs.inspect(done.Id)).toMatchObject({
      Running: false, ExitCode: 3, OpenStdout: true, OpenStderr: true, OpenStdin: false, DetachKeys: 'ctrl-x', CanRemove: false,
      ProcessConfig: { tty: true, entrypoint: 'ls', arguments: ['-l'], privileged: false, user: 'nobody' },
    });
    // The one never started is still there, listed in ExecIDs, and starts after the restart.
    expect(t.engine.containers.get(id).ExecIDs).toEqual([later.Id]);
    expect(t.engine.execs.inspect(later.Id)).toMatchObject({ Running: false, ExitCode: null });
    expect(await (await t.engine.execs.start(later.Id)).exited).toBe(3);
  });

  it('an exec running across a restart is shown running (same pid), then with its real exit code', async () => {
    t = await createTestEngine({ specDefaults: false });
    t.fake.script('*', { execExitCode: 7, execRunFor: 300 });
    const id = await runningContainer(t);
    const { Id } = await t.engine.execs.create(id, { Cmd: ['sh', '-c', 'sleep 2; exit 7'] });
    const session = await t.engine.execs.start(Id);

    await t.restart();
    expect(t.engine.execs.inspect(Id)).toMatchObject({ Running: true, ExitCode: null, Pid: session.pid });
    expect(t.engine.containers.get(id).ExecIDs).toEqual([Id]);
    expect(t.fake.callsOf('restoreExec', id).map((c) => c.args[0])).toEqual([Id]);
    await until('the exec to end', () => !t!.engine.execs.inspect(Id).Running);
    expect(t.engine.execs.inspect(Id)).toMatchObject({ Running: false, ExitCode: 7, Pid: 0 });
    expect(t.engine.containers.get(id).ExecIDs).toBeNull();
    expect(t.engine.events.history().map((e) => e.Action)).toContain('exec_die');
    // And it is saved: one more restart still says 7.
    await t.restart();
    expect(t.engine.execs.inspect(Id)).toMatchObject({ Running: false, ExitCode: 7 });
  });

  it('an exec that ended while the engine was down gets the code its backend kept', async () => {
    t = await createTestEngine({ specDefaults: false });
    t.fake.script('*', { execExitCode: 9, execRunFor: 300 });
    const id = await runningContainer(t);
    const { Id } = await t.engine.execs.create(id, { Cmd: ['false'] });
    await t.engine.execs.start(Id);
    await t.engine.close(); // nobody hears the exit now
    expect((await t.fake.restoreExec(id, Id))?.status).toBe('running');
    await until('the fake to hold the exit', async () => (await t!.fake.restoreExec(id, Id))?.status === 'stopped');

    await t.restart();
    expect(t.engine.execs.inspect(Id)).toMatchObject({ Running: false, ExitCode: 9, Pid: 0 });
    expect(t.engine.containers.get(id).ExecIDs).toBeNull();
    const die = t.engine.events.history().find((e) => e.Action === 'exec_die');
    expect(die?.Actor.Attributes).toMatchObject({ execID: Id, exitCode: '9' });
  });

  it('an exec its backend no longer knows is reported lost (255, logged), never as a clean exit', async () => {
    t = await createTestEngine({ specDefaults: false });
    const id = await runningContainer(t);
    await t.engine.close();
    // What a daemon killed right after saving "running" (before the runtime's exec) leaves.
    const ghost: ExecRecord = {
      ID: 'e'.repeat(64), ContainerID: id, Running: true, ExitCode: null, Pid: 4242, OpenStdin: false, OpenStdout: true, OpenStderr: true,
      CanRemove: false, DetachKeys: '', ProcessConfig: { tty: false, entrypoint: 'true', arguments: [], privileged: false, user: '' }, Config: { Cmd: ['true'] },
    };
    writeFileSync(join(t.dataRoot, 'containers', id, EXECS_FILE), JSON.stringify([ghost]));

    await t.restart();
    expect(t.engine.execs.inspect(ghost.ID)).toMatchObject({ Running: false, ExitCode: EXIT_CODE_UNKNOWN, Pid: 0 });
    expect(t.logger.entries.some((e) => e.level === 'warn' && e.msg.includes(ghost.ID) && e.msg.includes('unknown'))).toBe(true);
    expect(t.engine.containers.get(id).State.Running).toBe(true);
  });

  it('a restoreExec that fails counts as unknown (255), the engine still starts', async () => {
    t = await createTestEngine({ specDefaults: false });
    t.fake.script('*', { execRunFor: 60_000 });
    const id = await runningContainer(t);
    const { Id } = await t.engine.execs.create(id, { Cmd: ['sleep', '60'] });
    await t.engine.execs.start(Id);
    t.fake.fail('restoreExec', 'backend lost its mind');
    await t.restart();
    expect(t.engine.execs.inspect(Id)).toMatchObject({ Running: false, ExitCode: EXIT_CODE_UNKNOWN });
    expect(t.logger.entries.some((e) => e.level === 'error' && e.msg === 'exec restore failed')).toBe(true);
  });

  it('the backend drops its copy of an exit only after the exit is saved', async () => {
    t = await createTestEngine({ specDefaults: false });
    t.fake.script('*', { execExitCode: 5 });
    const id = await runningContainer(t);
    const seen: Array<ExecRecord | undefined> = [];
    const fake = t.fake;
    const original = fake.deleteExec.bind(fake);
    fake.deleteExec = async (cid: string, execId: string) => {
      seen.push(storedExecs(t!, cid).find((e) => e.ID === execId));
      return original(cid, execId);
    };
    const { Id } = await t.engine.execs.create(id, { Cmd: ['true'] });
    await (await t.engine.execs.start(Id)).exited;
    await until('deleteExec', () => seen.length > 0);
    expect(seen[0]).toMatchObject({ ID: Id, Running: false, ExitCode: 5 });
    expect(await fake.restoreExec(id, Id)).toBeNull();
  });

  it('execs go with their container (rm), also after a restart', async () => {
    t = await createTestEngine({ specDefaults: false });
    const id = await runningContainer(t);
    const { Id } = await t.engine.execs.create(id, { Cmd: ['true'] });
    await (await t.engine.execs.start(Id)).exited;
    await t.engine.containers.remove(id, { force: true });
    expect(() => t!.engine.execs.inspect(Id)).toThrow(`No such exec instance: ${Id}`);
    await t.restart();
    expect(() => t!.engine.execs.inspect(Id)).toThrow(`No such exec instance: ${Id}`);
  });

  it('finished execs are pruned as dockerd does: CanRemove at one pass, gone at the next; open ones stay', async () => {
    t = await createTestEngine({ specDefaults: false });
    const id = await runningContainer(t);
    const done = await t.engine.execs.create(id, { Cmd: ['true'] });
    await (await t.engine.execs.start(done.Id)).exited;
    await until('the exit to be recorded', () => t!.engine.execs.inspect(done.Id).ExitCode === 0);
    const open = await t.engine.execs.create(id, { Cmd: ['true'] });

    t.engine.execs.gc();
    expect(t.engine.execs.inspect(done.Id).CanRemove).toBe(true);
    expect(t.engine.execs.inspect(open.Id).CanRemove).toBe(false);
    t.engine.execs.gc();
    expect(() => t!.engine.execs.inspect(done.Id)).toThrow('No such exec instance');
    expect(t.engine.execs.inspect(open.Id).ExitCode).toBeNull();
    // The pruning is saved too.
    await t.restart();
    expect(() => t!.engine.execs.inspect(done.Id)).toThrow('No such exec instance');
    expect(t.engine.execs.inspect(open.Id).ID).toBe(open.Id);
  });

  it('an unreadable execs.json is logged and skipped; the container still loads', async () => {
    t = await createTestEngine({ specDefaults: false });
    const id = await runningContainer(t);
    await t.engine.execs.create(id, { Cmd: ['true'] });
    await t.engine.close();
    writeFileSync(join(t.dataRoot, 'containers', id, EXECS_FILE), '[{"ID": "torn');
    await t.restart();
    expect(t.engine.containers.get(id).State.Running).toBe(true);
    expect(t.engine.containers.get(id).ExecIDs).toBeNull();
    expect(t.logger.entries.some((e) => e.level === 'error' && e.msg === 'cannot parse the exec records; skipped' && e.fields?.['container'] === id)).toBe(true);
  });
});
