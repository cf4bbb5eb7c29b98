/**
 * The addon's setChildSubreaper/pidfdOpen/waitPidfd: a subreaper gets its orphaned
 * grandchildren as children and collects their real exit status through a pidfd, without
 * blocking; processes that are not its children are refused (ECHILD), never waited for; and
 * without the subreaper the orphans are not its to collect. The subreaper runs in a child Node
 * process of its own (it changes the whole process, and this worker must stay as it was).
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { errnoName, nativeAddon } from '../src/index.js';
import { noAddon } from './build-skip.js';

const addonFile = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../dist/native/berth.node');

/** Run `body` in a fresh Node process with `n` the addon; resolves to what it printed as JSON. */
function inChild(body: string): Promise<Record<string, unknown>> {
  const script = `
    const n = require(${JSON.stringify(addonFile)});
    const errno = (f) => { try { f(); return 'no error'; } catch (e) { return e.errno; } };
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    (async () => { ${body} })().then((out) => process.stdout.write(JSON.stringify(out)), (e) => { console.error(e); process.exit(1); });`;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['-e', script], { timeout: 20_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout) as Record<string, unknown>);
    });
  });
}

/** A shell that leaves an orphan behind (it exits 7 after a moment) and prints its pid. */
const ORPHAN = `n.run('/bin/sh', ['sh', '-c', '(sleep 0.3; exit 7) >/dev/null 2>&1 & echo $!'], null, 5000)`;

describe.skipIf(noAddon !== null)(`native subreaper and pidfd waits${noAddon ? ` (skipped: ${noAddon})` : ''}`, () => {
  it('a subreaper collects an orphaned grandchild: null while it runs, then its exit status, then ECHILD', async () => {
    const out = await inChild(`
      const before = n.childSubreaper();
      n.setChildSubreaper(true);
      const pid = Number((await ${ORPHAN}).stdout.trim());
      const fd = n.pidfdOpen(pid);
      const running = n.waitPidfd(fd);
      let done = null;
      for (let i = 0; i < 100 && !done; i++) { await sleep(50); done = n.waitPidfd(fd); }
      const again = errno(() => n.waitPidfd(fd));
      return { before, after: n.childSubreaper(), pid, running, done, again };`);
    expect(out.before).toBe(false);
    expect(out.after).toBe(true);
    expect(out.running).toBeNull();
    expect(out.done).toEqual({ pid: out.pid, status: 7, signal: null });
    expect(errnoName({ errno: out.again })).toBe('ECHILD');
  });

  it('reports a signal as the signal', async () => {
    const out = await inChild(`
      n.setChildSubreaper(true);
      const pid = Number((await n.run('/bin/sh', ['sh', '-c', 'sleep 30 >/dev/null 2>&1 & echo $!'], null, 5000)).stdout.trim());
      const fd = n.pidfdOpen(pid);
      process.kill(pid, 'SIGKILL');
      let done = null;
      for (let i = 0; i < 100 && !done; i++) { await sleep(20); done = n.waitPidfd(fd); }
      return { pid, done };`);
    expect(out.done).toEqual({ pid: out.pid, status: null, signal: 9 });
  });

  it('without the subreaper the orphan is not its child: ECHILD, never a wait', async () => {
    const out = await inChild(`
      const pid = Number((await ${ORPHAN}).stdout.trim());
      const fd = n.pidfdOpen(pid);
      return { sub: n.childSubreaper(), notChild: errno(() => n.waitPidfd(fd)) };`);
    expect(out.sub).toBe(false);
    expect(errnoName({ errno: out.notChild })).toBe('ECHILD');
  });

  it('checks its arguments and names the syscall of a failure', () => {
    const n = nativeAddon()!;
    expect(() => n.setChildSubreaper(1 as unknown as boolean)).toThrow(TypeError);
    expect(() => n.pidfdOpen('1' as unknown as number)).toThrow(TypeError);
    for (const bad of [NaN, -1, 1.5, 2 ** 31]) {
      expect(() => n.pidfdOpen(bad), String(bad)).toThrow(RangeError);
      expect(() => n.waitPidfd(bad), String(bad)).toThrow(RangeError);
    }
    let err: unknown;
    try {
      n.pidfdOpen(0);
    } catch (e) {
      err = e;
    }
    expect(errnoName(err)).toBe('EINVAL');
    expect((err as { syscall?: string }).syscall).toBe('pidfd_open');
    // fd 0 is no pidfd
    try {
      n.waitPidfd(0);
      err = null;
    } catch (e) {
      err = e;
    }
    expect((err as { syscall?: string }).syscall).toBe('waitid');
    expect(errnoName(err)).toBe('EBADF');
  });
});
