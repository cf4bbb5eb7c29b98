/**
 * The OCI backend under the real Engine (in a child process, as the daemon runs it): stop by
 * SIGTERM, stop by SIGKILL after the timeout when SIGTERM is ignored, pause/unpause, exec,
 * and `wait` returning within milliseconds of the exit.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Daemon, ensureBuilt, forceCleanup, processesMentioning, removeTestRootfs, runtimeSkipReason, testRootfs } from './runtime-helpers.js';

const skip = runtimeSkipReason();

interface Rec {
  ID: string;
  State: { Status: string; Running: boolean; Paused: boolean; ExitCode: number; FinishedAt: string };
}

describe.skipIf(skip !== null)(`OCI backend under the Engine${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let tmp: string;
  let d: Daemon;
  const ids: string[] = [];

  beforeAll(async () => {
    ensureBuilt();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-engine-'));
    d = Daemon.start(path.join(tmp, 'data'), path.join(tmp, 'exec'));
    await d.ready;
  }, 180_000);
  afterAll(async () => {
    for (const id of ids) await d?.call('remove', { id, force: true }).catch(() => undefined);
    await d?.kill9();
    if (tmp) forceCleanup(path.join(tmp, 'exec/oci/state/runc'), ids, [tmp]);
    removeTestRootfs();
  });

  async function run(name: string, cmd: string[]): Promise<string> {
    const { Id } = await d.call<{ Id: string }>('create', {
      name,
      Config: { Cmd: cmd },
      HostConfig: { NetworkMode: 'none' },
      rootfs: testRootfs(),
    });
    ids.push(Id);
    await d.call('start', { id: Id });
    return Id;
  }

  it('stop: SIGTERM, then SIGKILL after the timeout when SIGTERM is ignored', async () => {
    const polite = await run('polite', ['/bin/sh', '-c', 'trap "exit 3" TERM; while true; do sleep 0.05; done']);
    let t = Date.now();
    await d.call('stop', { id: polite, timeout: 10 });
    expect(Date.now() - t).toBeLessThan(5000);
    expect((await d.call<Rec>('inspect', { id: polite })).State.ExitCode).toBe(3);

    const stubborn = await run('stubborn', ['/bin/sh', '-c', 'trap "" TERM; while true; do sleep 0.05; done']);
    t = Date.now();
    await d.call('stop', { id: stubborn, timeout: 1 });
    const took = Date.now() - t;
    expect(took).toBeGreaterThanOrEqual(950);
    expect(took).toBeLessThan(6000);
    const st = (await d.call<Rec>('inspect', { id: stubborn })).State;
    expect(st.Status).toBe('exited');
    expect(st.ExitCode).toBe(137);
  });

  it('pause/unpause and exec in a running container', async () => {
    const id = await run('busy', ['/bin/sh', '-c', 'while true; do sleep 0.05; done']);
    await d.call('pause', { id });
    expect((await d.call<Rec>('inspect', { id })).State.Status).toBe('paused');
    await d.call('unpause', { id });
    expect((await d.call<Rec>('inspect', { id })).State.Status).toBe('running');
    const r = await d.call<{ exitCode: number; stdout: string; stderr: string }>('exec', {
      id,
      cmd: ['/bin/sh', '-c', 'echo "$GREETING from $(pwd)"; id -u; echo warn >&2; exit 6'],
      env: ['GREETING=hi'],
      user: '1000',
      workdir: '/tmp',
    });
    expect(r).toMatchObject({ exitCode: 6, stdout: 'hi from /tmp\n1000\n', stderr: 'warn\n' });
    await d.call('remove', { id, force: true });
    expect(processesMentioning(id)).toEqual([]);
  });

  it('wait returns within milliseconds of the exit', async () => {
    const { Id } = await d.call<{ Id: string }>('create', {
      name: 'quick',
      Config: { Cmd: ['/bin/sh', '-c', 'sleep 0.3; exit 9'] },
      HostConfig: { NetworkMode: 'none' },
      rootfs: testRootfs(),
    });
    ids.push(Id);
    const waited = d.call<{ StatusCode: number }>('wait', { id: Id, condition: 'next-exit' });
    await d.call('start', { id: Id });
    expect((await waited).StatusCode).toBe(9);
    const returnedAt = Date.now();
    const finished = Date.parse((await d.call<Rec>('inspect', { id: Id })).State.FinishedAt);
    // FinishedAt is the exit file's time; wait answered (through a JSON pipe) right after it.
    expect(returnedAt - finished).toBeLessThan(250);
  });
});
