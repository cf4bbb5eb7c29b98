/**
 * Checkpoint and restore through the engine with this plugin's store, on @berth/testing's
 * FakeRuntime (no root, no CRIU): what `docker checkpoint create/ls/rm` and `docker start
 * --checkpoint` do, the checkpoint hooks' order and undo steps, and what a failure or a crash
 * leaves behind (never a half-written checkpoint listed).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { StartStepError, definePlugin, errorKind, errorMessage, type PluginHooks } from '@berth/core';
import { FAKE_CHECKPOINT_FILE, FakeRuntime, createTestEngine, type TestEngine } from '@berth/testing';
import { CHECKPOINT_META_FILE, checkpointPlugin, type CheckpointMeta } from '../src/index.js';

let t: TestEngine | undefined;
afterEach(async () => {
  await t?.dispose();
  t = undefined;
});

type Fail = 'beforeCheckpoint' | 'afterCheckpoint' | 'beforeRestore' | 'afterRestore' | undefined;

/** A plugin that journals the checkpoint hooks (with the path each saw) and their undo steps, and can fail one. */
function journal(log: string[], fail: { at?: Fail } = {}) {
  return definePlugin({
    name: 'journal',
    type: 'io.berth.test.v1',
    apply(hooks: PluginHooks) {
      for (const hook of ['beforeCheckpoint', 'afterCheckpoint', 'beforeRestore', 'afterRestore'] as const) {
        hooks[hook].tapPromise('journal', async (ctx) => {
          log.push(`${hook} ${ctx.checkpoint.name} ${ctx.checkpoint.path}`);
          ctx.addUndo(() => void log.push(`undo ${hook}`), hook);
          if (fail.at === hook) throw new Error(`injected failure in ${hook}`);
        });
      }
    },
  });
}

async function setup(opts: { log?: string[]; fail?: { at?: Fail }; checkpoint?: boolean; experimental?: boolean } = {}): Promise<TestEngine> {
  const fake = new FakeRuntime({ features: { checkpoint: opts.checkpoint ?? true } });
  t = await createTestEngine({
    runtime: fake,
    experimental: opts.experimental ?? true,
    plugins: [checkpointPlugin(), journal(opts.log ?? [], opts.fail ?? {})],
  });
  return t;
}

async function running(te: TestEngine, extra: Parameters<TestEngine['createContainer']>[0] = {}): Promise<string> {
  const id = await te.createContainer({ name: 'cp', ...extra });
  await te.engine.containers.start(id);
  return id;
}

const checkpointsDir = (te: TestEngine, id: string) => join(te.engine.config.dataRoot, 'containers', id, 'checkpoints');

describe('docker checkpoint create / ls / rm, docker start --checkpoint', () => {
  it('create (exit): hooks around the dump, published whole under <container dir>/checkpoints/<name>/, the container exits 137 with a checkpoint event; start --checkpoint restores it', async () => {
    const log: string[] = [];
    const te = await setup({ log });
    const id = await running(te);
    await te.engine.checkpoints.create('cp', { name: 'cp1', exit: true });

    const dir = checkpointsDir(te, id);
    // The hooks saw the temporary directory the runtime wrote into, not the published name.
    expect(log.map((l) => l.split(' ').slice(0, 2).join(' '))).toEqual(['beforeCheckpoint cp1', 'afterCheckpoint cp1']);
    const written = log[0]!.split(' ')[2]!;
    expect(written.startsWith(join(dir, '.tmp-cp1.'))).toBe(true);
    expect(existsSync(written)).toBe(false);
    expect(readdirSync(dir)).toEqual(['cp1']);
    expect(readdirSync(join(dir, 'cp1')).sort()).toEqual([CHECKPOINT_META_FILE, FAKE_CHECKPOINT_FILE]);
    const meta = JSON.parse(readFileSync(join(dir, 'cp1', CHECKPOINT_META_FILE), 'utf8')) as CheckpointMeta;
    expect(meta).toMatchObject({ Name: 'cp1', ContainerID: id, ContainerName: 'cp', Exit: true, Runtime: 'fake' });
    expect(await te.engine.checkpoints.list('cp')).toEqual([{ Name: 'cp1' }]);

    const rec = te.engine.containers.get(id);
    expect(rec.State).toMatchObject({ Status: 'exited', Running: false, ExitCode: 137 });
    expect(te.engine.events.history({ sinceNano: 0n }).filter((e) => e.Actor.ID === id).map((e) => e.Action)).toContain('checkpoint');

    log.length = 0;
    await te.engine.containers.start('cp', { checkpoint: 'cp1' });
    expect(log.map((l) => l.split(' ').slice(0, 2).join(' '))).toEqual(['beforeRestore cp1', 'afterRestore cp1']);
    expect(log[0]!.split(' ')[2]).toBe(join(dir, 'cp1'));
    expect(te.fake.callsOf('create').at(-1)!.args[0]).toMatchObject({ checkpoint: { path: join(dir, 'cp1') } });
    expect(te.engine.containers.get(id).State).toMatchObject({ Status: 'running', Running: true, ExitCode: 0 });
  });

  it('--leave-running (Exit false): the container keeps running and is not counted as stopped by hand', async () => {
    const te = await setup();
    const id = await running(te);
    await te.engine.checkpoints.create(id, { name: 'live', exit: false });
    expect(te.engine.containers.get(id).State.Status).toBe('running');
    expect(te.engine.containers.get(id).HasBeenManuallyStopped).toBe(false);
    expect(await te.engine.checkpoints.list(id)).toEqual([{ Name: 'live' }]);
  });

  it('a checkpoint that stops the container counts as a stop by hand: restart policy "always" leaves it exited', async () => {
    const te = await setup();
    const id = await running(te, { HostConfig: { RestartPolicy: { Name: 'always' } } });
    await te.engine.checkpoints.create(id, { name: 'stopped', exit: true });
    await te.engine.containers.idle();
    expect(te.engine.containers.get(id).State).toMatchObject({ Status: 'exited', ExitCode: 137, Restarting: false });
    expect(te.fake.callsOf('create')).toHaveLength(1);
  });

  it('a name in use is a 409; names that are not one path element are a 400 and nothing is written', async () => {
    const te = await setup();
    const id = await running(te);
    await te.engine.checkpoints.create(id, { name: 'one', exit: false });
    const again = await te.engine.checkpoints.create(id, { name: 'one', exit: false }).catch((e: unknown) => e);
    expect(errorKind(again)).toBe('Conflict');
    expect(errorMessage(again)).toBe('checkpoint with name one already exists for container cp');
    for (const bad of ['../outside', 'a/b', '.hidden', 'x', 'trailing.', '']) {
      const err = await te.engine.checkpoints.create(id, { name: bad, exit: false }).catch((e: unknown) => e);
      expect(errorKind(err), bad).toBe('InvalidParameter');
      expect(errorMessage(err)).toBe(`invalid checkpoint ID ${JSON.stringify(bad)}, only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
      if (bad === '') continue; // an empty `checkpoint` query is no checkpoint
      const start = await te.engine.containers.start(id, { checkpoint: bad }).catch((e: unknown) => e);
      expect(errorKind(start), bad).toBe('InvalidParameter');
    }
    expect(readdirSync(checkpointsDir(te, id))).toEqual(['one']);
    expect(existsSync(join(te.engine.config.dataRoot, 'containers', 'outside'))).toBe(false);
  });

  it('a runtime that cannot checkpoint: 400 "checkpoint is not supported by runtime fake" before any hook, nothing written', async () => {
    const log: string[] = [];
    const te = await setup({ log, checkpoint: false });
    const id = await running(te);
    const err = await te.engine.checkpoints.create(id, { name: 'cp1', exit: true }).catch((e: unknown) => e);
    expect(errorKind(err)).toBe('InvalidParameter');
    expect(errorMessage(err)).toBe('checkpoint is not supported by runtime fake');
    expect(log).toEqual([]);
    expect(existsSync(checkpointsDir(te, id))).toBe(false);
    expect(te.engine.containers.get(id).State.Status).toBe('running');
  });

  it("a backend whose probe has not answered yet (features() still false) is asked with checkpointSupported, which waits: no spurious 400", async () => {
    /** As the OCI backend with runc: checkpoint false in features() until the background `criu check` answers. */
    class Probing extends FakeRuntime {
      answered = false;
      override features(runtime?: string) {
        return { ...super.features(runtime), checkpoint: this.answered && super.features(runtime).checkpoint };
      }
      async checkpointSupported(runtime?: string): Promise<boolean> {
        await new Promise((r) => setTimeout(r, 20));
        this.answered = true;
        return this.features(runtime).checkpoint;
      }
    }
    const fake = new Probing({ features: { checkpoint: true } });
    t = await createTestEngine({ runtime: fake, experimental: true, plugins: [checkpointPlugin()] });
    const id = await running(t);
    expect(fake.features().checkpoint).toBe(false);
    await t.engine.checkpoints.create(id, { name: 'early', exit: true });
    expect(await t.engine.checkpoints.list(id)).toEqual([{ Name: 'early' }]);
    fake.answered = false;
    await t.engine.containers.start(id, { checkpoint: 'early' });
    expect(t.engine.containers.get(id).State.Status).toBe('running');
  });

  it('a container that does not run: 409 "Container <id> is not running"', async () => {
    const te = await setup();
    const id = await te.createContainer({ name: 'idle' });
    const err = await te.engine.checkpoints.create(id, { name: 'cp1', exit: true }).catch((e: unknown) => e);
    expect(errorKind(err)).toBe('Conflict');
    expect(errorMessage(err)).toBe(`Container ${id} is not running`);
  });

  it("the runtime's dump fails: dockerd's 500 'Cannot checkpoint container', undo steps ran, nothing listed or left, the container runs on", async () => {
    const log: string[] = [];
    const te = await setup({ log });
    const id = await running(te);
    te.fake.fail('checkpoint', 'criu dump failed; CRIU log: /x/criu-dump.log');
    const err = await te.engine.checkpoints.create('cp', { name: 'cp1', exit: true }).catch((e: unknown) => e);
    expect(errorKind(err)).toBe('System');
    expect(errorMessage(err)).toBe('Cannot checkpoint container cp: criu dump failed; CRIU log: /x/criu-dump.log');
    expect(log.map((l) => l.split(' ')[0])).toEqual(['beforeCheckpoint', 'undo']);
    expect(readdirSync(checkpointsDir(te, id))).toEqual([]);
    expect(await te.engine.checkpoints.list(id)).toEqual([]);
    const rec = te.engine.containers.get(id);
    expect(rec.State.Status).toBe('running');
    expect(rec.HasBeenManuallyStopped).toBe(false);
  });

  it('an afterCheckpoint tap fails: undo steps newest first, the checkpoint is dropped, never listed', async () => {
    const log: string[] = [];
    const te = await setup({ log, fail: { at: 'afterCheckpoint' } });
    const id = await running(te);
    const err = await te.engine.checkpoints.create(id, { name: 'cp1', exit: false }).catch((e: unknown) => e);
    expect(errorMessage(err)).toContain('injected failure in afterCheckpoint');
    expect(log.map((l) => l.split(' ').slice(0, 2).join(' '))).toEqual(['beforeCheckpoint cp1', 'afterCheckpoint cp1', 'undo afterCheckpoint', 'undo beforeCheckpoint']);
    expect(readdirSync(checkpointsDir(te, id))).toEqual([]);
  });

  it('the restore fails in the runtime: the start fails (restore undo steps run), the container stays exited, the checkpoint stays', async () => {
    const log: string[] = [];
    const te = await setup({ log });
    const id = await running(te);
    await te.engine.checkpoints.create(id, { name: 'cp1', exit: true });
    log.length = 0;
    te.fake.fail('create', 'restore failed; CRIU log: /x/criu-restore.log');
    const err = await te.engine.containers.start(id, { checkpoint: 'cp1' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StartStepError);
    expect((err as StartStepError).step).toBe('runtimeCreate');
    expect(log.map((l) => l.split(' ').slice(0, 2).join(' '))).toEqual(['beforeRestore cp1', 'undo beforeRestore']);
    const rec = te.engine.containers.get(id);
    expect(rec.State).toMatchObject({ Status: 'exited', Running: false });
    expect(rec.State.Error).toContain('restore failed; CRIU log: /x/criu-restore.log');
    expect(await te.engine.checkpoints.list(id)).toEqual([{ Name: 'cp1' }]);
  });

  it('an afterRestore tap fails: the start fails, the restored container is deleted from the runtime, undo steps newest first', async () => {
    const log: string[] = [];
    const te = await setup({ log, fail: { at: 'afterRestore' } });
    const id = await running(te);
    await te.engine.checkpoints.create(id, { name: 'cp1', exit: true });
    log.length = 0;
    const err = await te.engine.containers.start(id, { checkpoint: 'cp1' }).catch((e: unknown) => e);
    expect((err as StartStepError).step).toBe('runtimeCreate');
    expect(errorMessage(err)).toContain('injected failure in afterRestore');
    expect(log.map((l) => l.split(' ').slice(0, 2).join(' '))).toEqual(['beforeRestore cp1', 'afterRestore cp1', 'undo afterRestore', 'undo beforeRestore']);
    expect(te.fake.containers.has(id)).toBe(false);
    expect(te.engine.containers.get(id).State).toMatchObject({ Status: 'exited', Running: false });
  });

  it('a start from a checkpoint on a runtime that cannot restore: 400 before any restore hook, nothing created', async () => {
    const log: string[] = [];
    const te = await setup({ log, checkpoint: false });
    const id = await te.createContainer({ name: 'cc' });
    // a checkpoint made elsewhere (another daemon, by hand): present, but this runtime cannot restore it
    mkdirSync(join(checkpointsDir(te, id), 'cp1'), { recursive: true });
    const err = await te.engine.containers.start(id, { checkpoint: 'cp1' }).catch((e: unknown) => e);
    expect(errorKind(err)).toBe('InvalidParameter');
    expect(errorMessage(err)).toBe('checkpoint is not supported by runtime fake');
    expect(log).toEqual([]);
    expect(te.fake.callsOf('create')).toHaveLength(0);
    expect(te.engine.containers.get(id).State.Status).toBe('created');
  });

  it('start from a checkpoint that does not exist: 404, nothing created', async () => {
    const te = await setup();
    const id = await te.createContainer({ name: 'cc' });
    const err = await te.engine.containers.start(id, { checkpoint: 'nope' }).catch((e: unknown) => e);
    expect(errorKind(err)).toBe('NotFound');
    expect(errorMessage(err)).toBe('checkpoint nope does not exist for container cc');
    expect(te.fake.callsOf('create')).toHaveLength(0);
  });

  it('rm: gone from the list and the disk; an unknown name is a 404', async () => {
    const te = await setup();
    const id = await running(te);
    await te.engine.checkpoints.create(id, { name: 'a1', exit: false });
    await te.engine.checkpoints.create(id, { name: 'b2', exit: false });
    expect(await te.engine.checkpoints.list(id)).toEqual([{ Name: 'a1' }, { Name: 'b2' }]);
    await te.engine.checkpoints.remove(id, 'a1');
    expect(await te.engine.checkpoints.list(id)).toEqual([{ Name: 'b2' }]);
    expect(readdirSync(checkpointsDir(te, id))).toEqual(['b2']);
    const err = await te.engine.checkpoints.remove(id, 'a1').catch((e: unknown) => e);
    expect(errorKind(err)).toBe('NotFound');
  });

  it('--checkpoint-dir: create, ls, start and rm in a directory of the client; a relative one is a 400, a missing one a 404 for ls', async () => {
    const te = await setup();
    const id = await running(te);
    const dir = join(te.dir, 'elsewhere');
    await te.engine.checkpoints.create(id, { name: 'cp1', dir, exit: true });
    expect(readdirSync(dir)).toEqual(['cp1']);
    expect(existsSync(checkpointsDir(te, id))).toBe(false);
    expect(await te.engine.checkpoints.list(id, dir)).toEqual([{ Name: 'cp1' }]);
    expect(await te.engine.checkpoints.list(id)).toEqual([]);
    await te.engine.containers.start(id, { checkpoint: 'cp1', checkpointDir: dir });
    expect(te.engine.containers.get(id).State.Status).toBe('running');
    await te.engine.checkpoints.remove(id, 'cp1', dir);
    expect(readdirSync(dir)).toEqual([]);
    expect(errorKind(await te.engine.checkpoints.create(id, { name: 'cp2', dir: 'relative/dir', exit: false }).catch((e: unknown) => e))).toBe('InvalidParameter');
    expect(errorKind(await te.engine.checkpoints.list(id, join(te.dir, 'missing')).catch((e: unknown) => e))).toBe('NotFound');
  });

  it('a checkpoint a crash cut short (its temporary directory) is never listed and is swept at the next start', async () => {
    const te = await setup();
    const id = await running(te, { HostConfig: { RestartPolicy: { Name: 'no' } } });
    await te.engine.checkpoints.create(id, { name: 'whole', exit: false });
    const half = join(checkpointsDir(te, id), '.tmp-half.0123abcd');
    mkdirSync(half);
    expect(await te.engine.checkpoints.list(id)).toEqual([{ Name: 'whole' }]);
    await te.restart();
    expect(readdirSync(checkpointsDir(te, id))).toEqual(['whole']);
  });

  it('without experimental mode: 400 "checkpoint is only supported in experimental mode"', async () => {
    const te = await setup({ experimental: false });
    const id = await running(te);
    for (const call of [
      () => te.engine.checkpoints.create(id, { name: 'cp1', exit: false }),
      () => te.engine.checkpoints.list(id),
      () => te.engine.containers.start(id, { checkpoint: 'cp1' }),
    ]) {
      const err = await call().catch((e: unknown) => e);
      expect(errorKind(err)).toBe('InvalidParameter');
      expect(errorMessage(err)).toBe('checkpoint is only supported in experimental mode');
    }
  });
});
