/**
 * FakeRuntime's checkpoint/restore, for plugin authors' unit tests of checkpoint hooks without
 * root: per-runtime features, the checkpoint file, the exit (137) of a checkpoint that stops
 * the container, a restore on create that runs at once, and scripted failures.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { errorKind, type ExitInfo, type RuntimeCreateOptions } from '@berth/core';
import { FAKE_CHECKPOINT_FILE, FakeRuntime } from '../src/index.js';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-fake-ckpt-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function options(id: string, runtime: string, checkpoint?: string): RuntimeCreateOptions {
  return {
    id,
    spec: { ociVersion: '1.2.0', process: { user: { uid: 0, gid: 0 }, args: ['/bin/app', '--serve'], cwd: '/' } },
    runtime,
    runtimeArgs: [],
    rootUid: 0,
    rootGid: 0,
    stdio: { tty: false, openStdin: false, stdinOnce: false },
    log: { path: '' },
    ...(checkpoint ? { checkpoint: { path: checkpoint } } : {}),
  };
}

describe('FakeRuntime checkpoint/restore', () => {
  it('answers features per runtime: only the runtime configured for it can checkpoint', async () => {
    const rt = new FakeRuntime({ runtimes: ['plain', 'criu'], runtimeFeatures: { criu: { checkpoint: true } } });
    expect(rt.features('criu').checkpoint).toBe(true);
    expect(rt.features('plain').checkpoint).toBe(false);
    expect(rt.features().checkpoint).toBe(false); // the first runtime
    expect(rt.features('unknown').checkpoint).toBe(false);
    await rt.create(options('a', 'plain'));
    await rt.start('a');
    const err = await rt.checkpoint('a', { path: path.join(dir, 'cp'), exit: true }).catch((e: unknown) => e);
    expect(errorKind(err)).toBe('InvalidParameter');
    expect((err as Error).message).toBe('checkpoint is not supported by runtime plain');
    expect(fs.existsSync(path.join(dir, 'cp'))).toBe(false);
    expect((await rt.state('a'))!.status).toBe('running');
  });

  it('checkpoint with exit writes the container\'s process and reports exit 137 before it resolves; a restore runs it at once', async () => {
    const rt = new FakeRuntime({ features: { checkpoint: true } });
    const exits: ExitInfo[] = [];
    rt.onExit((e) => exits.push(e));
    await rt.create(options('a', 'fake'));
    await rt.start('a');
    const cp = path.join(dir, 'checkpoints', 'cp1');
    await rt.checkpoint('a', { path: cp, exit: true });
    expect(exits.map((e) => [e.id, e.exitCode])).toEqual([['a', 137]]);
    expect(JSON.parse(fs.readFileSync(path.join(cp, FAKE_CHECKPOINT_FILE), 'utf8'))).toMatchObject({ id: 'a', process: { args: ['/bin/app', '--serve'] }, exit: true });
    await rt.delete('a');
    await rt.create(options('a', 'fake', cp));
    expect((await rt.state('a'))!.status).toBe('running'); // running once create returns
    await rt.start('a'); // a no-op on a restored container
    expect(rt.containers.get('a')!.restoredFrom).toBe(cp);
    await rt.kill('a', 15);
    await new Promise((r) => setTimeout(r, 5));
    expect(exits.map((e) => e.exitCode)).toEqual([137, 143]);
  });

  it('leave-running keeps the container; a stopped one is a Conflict; scripted failures and a missing checkpoint fail', async () => {
    const rt = new FakeRuntime({ features: { checkpoint: true } });
    await rt.create(options('a', 'fake'));
    await rt.start('a');
    await rt.checkpoint('a', { path: path.join(dir, 'keep'), exit: false });
    expect((await rt.state('a'))!.status).toBe('running');
    rt.fail('checkpoint', 'criu failed: type NOTIFY errno 0', { id: 'a' });
    await expect(rt.checkpoint('a', { path: path.join(dir, 'x'), exit: true })).rejects.toThrow('criu failed');
    expect(rt.callsOf('checkpoint', 'a')).toHaveLength(2);
    expect((await rt.state('a'))!.status).toBe('running');
    rt.exit('a', 0);
    expect(errorKind(await rt.checkpoint('a', { path: path.join(dir, 'y'), exit: true }).catch((e: unknown) => e))).toBe('Conflict');
    await expect(rt.create(options('b', 'fake', path.join(dir, 'nothing-here')))).rejects.toThrow(/restore from .*nothing-here failed/);
    expect(rt.containers.has('b')).toBe(false);
  });
});
