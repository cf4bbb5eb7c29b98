/**
 * Live restore: an Engine with the OCI backend runs in a child process ("the daemon"); it
 * is killed with SIGKILL while containers run; a new one on the same data/exec roots finds
 * them still running and stoppable, and one that exited meanwhile with its real exit code,
 * FinishedAt and the logs it wrote while no daemon was there.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readLogs } from '@berth/core';
import { Daemon, ensureBuilt, forceCleanup, processesMentioning, runtimeSkipReason, testRootfs, removeTestRootfs } from './runtime-helpers.js';

const skip = runtimeSkipReason();
interface Rec {
  ID: string;
  LogPath: string;
  State: { Status: string; Running: boolean; Pid: number; ExitCode: number; FinishedAt: string; StartedAt: string };
}

describe.skipIf(skip !== null)(`live restore after the daemon is SIGKILLed${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let tmp: string;
  let dataRoot: string;
  let execRoot: string;
  const daemons: Daemon[] = [];
  const ids: string[] = [];

  beforeAll(() => {
    ensureBuilt();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-restore-'));
    dataRoot = path.join(tmp, 'data');
    execRoot = path.join(tmp, 'exec');
  }, 180_000);
  afterAll(async () => {
    for (const d of daemons) await d.kill9();
    if (tmp) forceCleanup(path.join(execRoot ?? tmp, 'oci/state/runc'), ids, [tmp]);
    removeTestRootfs();
  });

  it('containers survive, stay stoppable, and an exit while down keeps its code and time', async () => {
    const rootfs = testRootfs();
    const d1 = Daemon.start(dataRoot, execRoot);
    daemons.push(d1);
    await d1.ready;
    const mk = async (name: string, cmd: string[]): Promise<string> => {
      const { Id } = await d1.call<{ Id: string }>('create', {
        name,
        Config: { Cmd: cmd, StopTimeout: 5 },
        HostConfig: { NetworkMode: 'none' },
        rootfs,
      });
      ids.push(Id);
      await d1.call('start', { id: Id });
      return Id;
    };
    const longId = await mk('long', ['/bin/sh', '-c', 'trap "echo bye; exit 143" TERM; echo up; while true; do sleep 0.05; done']);
    const shortId = await mk('short', ['/bin/sh', '-c', 'sleep 1; echo "wrote while down"; exit 42']);
    const before = await d1.call<Rec>('inspect', { id: longId });
    expect(before.State.Running).toBe(true);
    const conmons = processesMentioning(`-c ${longId}`);
    expect(conmons.length).toBeGreaterThan(0);

    await d1.kill9();
    const killedAt = Date.now();
    // The monitors are not children of the daemon: they outlive it.
    expect(processesMentioning(`-c ${longId}`).length).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 1800)); // the short one exits while no daemon runs

    const d2 = Daemon.start(dataRoot, execRoot);
    daemons.push(d2);
    await d2.ready;
    const long = await d2.call<Rec>('inspect', { id: longId });
    expect(long.State.Status).toBe('running');
    expect(long.State.Pid).toBe(before.State.Pid);
    const short = await d2.call<Rec>('inspect', { id: shortId });
    expect(short.State.Status).toBe('exited');
    expect(short.State.ExitCode).toBe(42);
    const finished = Date.parse(short.State.FinishedAt);
    expect(finished).toBeGreaterThan(killedAt);
    expect(finished).toBeLessThan(Date.now() - 200);
    const shortLogs: string[] = [];
    for await (const m of readLogs(short.LogPath)) shortLogs.push(m.line.toString());
    expect(shortLogs).toEqual(['wrote while down\n']);

    // Still stoppable through the new daemon, with its exit seen by it.
    await d2.call('stop', { id: longId, timeout: 5 });
    const stopped = await d2.call<Rec>('inspect', { id: longId });
    expect(stopped.State.Status).toBe('exited');
    expect(stopped.State.ExitCode).toBe(143);
    const longLogs: string[] = [];
    for await (const m of readLogs(stopped.LogPath)) longLogs.push(m.line.toString());
    expect(longLogs).toEqual(['up\n', 'bye\n']);

    for (const id of [longId, shortId]) await d2.call('remove', { id, force: true });
    for (const id of [longId, shortId]) {
      expect(processesMentioning(id)).toEqual([]);
      expect(fs.existsSync(path.join(execRoot, 'oci', id))).toBe(false);
    }
  });
});
