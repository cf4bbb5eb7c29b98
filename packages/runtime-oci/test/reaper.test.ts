/**
 * The subreaper (reaper.ts): it collects the real exit of a watched orphan (a killed monitor's
 * child becomes this process's), leaves no zombie, never takes a child libuv spawned (their
 * 'exit' events still come, with their codes), drops a process its own parent reaped, and is
 * an explicit option: a backend without it leaves the host process's reaping alone. Runs in
 * this worker; every Reaper is closed, which clears the subreaper flag again.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '@berth/core';
import { nativeAddon } from '@berth/native';
import { OciRuntimeBackend } from '../src/backend.js';
import { procRef } from '../src/monitor.js';
import { Reaper, type ReapedExit } from '../src/reaper.js';
import { zombieChildren } from './zombies.js';

const native = nativeAddon();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Leave an orphan behind (a shell's background job; the shell exits) and return its pid. */
async function orphan(script: string): Promise<number> {
  const r = await native!.run('/bin/sh', ['sh', '-c', `(${script}) >/dev/null 2>&1 & echo $!`], null, 5000);
  return Number(r.stdout.trim());
}

/** This process's zombie children (state Z, parent = us). */
const zombies = () => zombieChildren(process.pid);

async function until<T>(f: () => T | undefined, what: string): Promise<T> {
  for (let i = 0; i < 200; i++) {
    const v = f();
    if (v !== undefined) return v;
    await sleep(25);
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe.skipIf(!native)(`Reaper (berthd as a child subreaper)${native ? '' : ' (skipped: no native addon, so berthd cannot be a subreaper)'}`, () => {
  const open: Reaper[] = [];
  const start = (reaped?: (e: ReapedExit) => void): Reaper => {
    const r = Reaper.start({ warn: (msg, err) => console.warn(msg, err), reaped })!;
    expect(r).not.toBeNull();
    open.push(r);
    return r;
  };
  afterEach(() => {
    for (const r of open.splice(0)) r.close();
    expect(native!.childSubreaper()).toBe(false);
  });

  it('collects an orphan’s real exit code (kept for exitOf until forget) and leaves no zombie', async () => {
    const seen: ReapedExit[] = [];
    const r = start((e) => seen.push(e));
    expect(native!.childSubreaper()).toBe(true);
    const pid = await orphan('sleep 0.3; exit 3');
    const started = procRef(pid)!.start;
    r.watch(pid, { start: started, keep: true });
    expect(r.exitOf(pid)).toBeUndefined(); // still running
    const exit = await until(() => r.exitOf(pid), 'the orphan to be collected');
    expect(exit).toEqual({ pid, code: 3, status: 3, signal: null });
    // Kept for that very process only: a later process under the same pid is another one.
    expect(r.exitOf(pid, started)).toEqual(exit);
    expect(r.exitOf(pid, `${started}1`)).toBeUndefined();
    expect(seen).toEqual([exit]);
    expect(zombies()).not.toContain(pid);
    expect(fs.existsSync(`/proc/${pid}`)).toBe(false);
    r.forget(pid);
    expect(r.exitOf(pid)).toBeUndefined();
    expect(r.watching()).toBe(0);
  });

  it('a signal is 128 + the signal; a process watched without keep is collected and forgotten', async () => {
    const r = start();
    const killed = await orphan('exec sleep 30');
    const plain = await orphan('exit 0');
    r.watch(killed, { keep: true });
    r.watch(plain);
    process.kill(killed, 'SIGKILL');
    expect(await until(() => r.exitOf(killed), 'the killed orphan')).toMatchObject({ code: 137, signal: 9, status: null });
    await until(() => (zombies().includes(plain) ? undefined : true), 'the plain orphan to be collected');
    expect(r.exitOf(plain)).toBeUndefined();
    expect(zombies()).toEqual([]);
  });

  it('never takes a child libuv spawned: their exit events keep their codes while the reaper sweeps', async () => {
    const r = start();
    const watched = await orphan('sleep 0.2; exit 4');
    r.watch(watched, { keep: true });
    const codes = await Promise.all(
      [1, 2, 3, 5, 6, 7].map(
        (code) =>
          new Promise<number | null>((resolve) => {
            const c = spawn('/bin/sh', ['-c', `sleep 0.1; exit ${code}`], { stdio: 'ignore' });
            c.on('exit', (c2) => resolve(c2));
          }),
      ),
    );
    expect(codes).toEqual([1, 2, 3, 5, 6, 7]);
    expect((await until(() => r.exitOf(watched), 'the orphan')).code).toBe(4);
  });

  it('a process its own parent reaps is dropped (fd closed), never waited for', async () => {
    const r = start();
    // The shell waits for its background job itself: the job is never ours.
    const sh = spawn('/bin/sh', ['-c', 'sleep 0.2 & echo $!; wait; sleep 0.3'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const pid = await new Promise<number>((resolve) => sh.stdout.once('data', (b: Buffer) => resolve(Number(b.toString().trim()))));
    r.watch(pid, { keep: true });
    expect(r.watching()).toBe(1);
    const shExit = new Promise<number | null>((resolve) => sh.on('exit', resolve));
    await until(() => (r.watching() === 0 ? true : undefined), 'the entry to be dropped');
    expect(r.exitOf(pid)).toBeUndefined();
    expect(await shExit).toBe(0);
  });

  it('refuses a pid that is no longer the process the caller saw (start time)', async () => {
    const r = start();
    const pid = await orphan('sleep 1');
    r.watch(pid, { start: 'not-its-start-time', keep: true });
    expect(r.watching()).toBe(0);
    process.kill(pid, 'SIGKILL');
    r.watch(pid); // collect it: no zombie left by this test
    await until(() => (zombies().includes(pid) ? undefined : true), 'the orphan to be collected');
  });

  it('is an explicit option of the OCI backend: off by default (a library), on with subreaper: true', async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-reaper-'));
    try {
      const opts = { execRoot: tmp, runtimes: { runc: { path: '/bin/true' } }, defaultRuntime: 'runc', logger: silentLogger };
      const lib = new OciRuntimeBackend(opts);
      expect(native!.childSubreaper()).toBe(false);
      const daemon = new OciRuntimeBackend({ ...opts, subreaper: true });
      expect(native!.childSubreaper()).toBe(true);
      await daemon.close();
      expect(native!.childSubreaper()).toBe(false);
      await lib.close();
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});
