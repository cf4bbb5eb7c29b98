/**
 * A killed monitor and a corrupt runtime record (issue 10 items 4 and 5), through a real berthd,
 * runc, conmon and the docker CLI:
 *  - conmon killed with SIGKILL while its container runs: the exit is still seen (`docker wait`
 *    returns, `docker ps` no longer lists it) with its real code — berthd is the subreaper of
 *    its containers, so it collects the orphaned init itself — leaving no zombie child of
 *    berthd, and a second berthd beside it is not disturbed; `stop -t 1` / `rm -f` return
 *    promptly instead of waiting 30 s for an exit event that never comes;
 *  - a corrupt `berth.json` (the backend's record in the exec root) of a running container:
 *    after a restart the container is still running and managed (exec, start, stop, rm work)
 *    and a start never kills it.
 * The CLI calls run with timeouts below the old 30 s wait, so a hang fails the test.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { nativeAddon, nativeAddonStatus } from '@berth/native';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { TEST_IMAGE, berthdSkipReason, removeTestImageTarball, startBerthd, type Berthd } from './helpers/berthd.js';
import { inspectContainer, leftovers } from './helpers/failpoints.js';
import { zombieChildren } from '../../packages/runtime-oci/test/zombies.js';

const skip = berthdSkipReason();
/**
 * berthd runs under a stand-in for a host's init that reaps orphans at once (as systemd does):
 * an exit code berthd does not collect itself is then really gone, not read from a zombie.
 */
const PROMPT_INIT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'helpers/prompt-init.mjs');

/** berthd collects a killed monitor's exits through the native addon (subreaper, pidfd waits). */
const noSubreaper = nativeAddon() ? null : `no native addon (${nativeAddonStatus().fallback}): berthd cannot be a subreaper`;
if (noSubreaper) console.warn(`runtime-monitor: real-exit-code tests skipped: ${noSubreaper}`);

function berthdPid(d: Berthd): number {
  return Number(fs.readFileSync(d.pidfile, 'utf8').trim());
}
/** Shorter than the 30 s the old code waited for an exit after SIGKILL. */
const PROMPT_MS = 20_000;

function conmonPid(d: Berthd, id: string): number {
  return Number(fs.readFileSync(path.join(d.execRoot, 'oci', id, 'conmon.pid'), 'utf8').trim());
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return !/^[ZX]$/.test(stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3));
}

async function killMonitor(d: Berthd, id: string): Promise<void> {
  const pid = conmonPid(d, id);
  expect(alive(pid), 'conmon runs before the test kills it').toBe(true);
  process.kill(pid, 'SIGKILL');
  for (let i = 0; i < 200 && alive(pid); i++) await new Promise((r) => setTimeout(r, 10));
}

/** No zombie child of `parent` stays (one may exist for the moment between an exit and its reaping). */
async function expectNoZombies(parent: number): Promise<void> {
  let z = zombieChildren(parent);
  for (let i = 0; i < 50 && z.length; i++) {
    await new Promise((r) => setTimeout(r, 100));
    z = zombieChildren(parent);
  }
  expect(z, `zombie children of ${parent}`).toEqual([]);
}

async function runDetached(d: Berthd, name: string, cmd: string): Promise<string> {
  const r = await d.docker(['run', '-d', '--name', name, TEST_IMAGE, 'sh', '-c', cmd]);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim();
}

describe.skipIf(skip !== null)(`monitors and runtime records${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let d: Berthd | undefined;
  // a restart test's first daemon owns the temp dir (the second runs on it): cleaned up last
  let first: Berthd | undefined;
  // a second daemon running beside `d`
  let other: Berthd | undefined;
  afterEach(async () => {
    await d?.cleanup();
    await first?.cleanup();
    await other?.cleanup();
    d = first = other = undefined;
  });
  afterAll(removeTestImageTarball);

  describe('a killed monitor (conmon SIGKILLed)', () => {
    it.skipIf(noSubreaper !== null)(`the exit is seen with its real code (berthd collects the orphaned init), no zombie stays, a second berthd is undisturbed${noSubreaper ? ` (skipped: ${noSubreaper})` : ''}`, async () => {
      d = await startBerthd({ launcher: PROMPT_INIT });
      other = await startBerthd({ launcher: PROMPT_INIT });
      await d.loadTestImage();
      await other.loadTestImage();
      const bystander = await runDetached(other, 'bystander', 'sleep 1000');
      const later = await runDetached(other, 'exits7', 'sleep 4; exit 7');
      const id = await runDetached(d, 'exits3', 'sleep 2; exit 3');
      await killMonitor(d, id);

      const w = await d.docker(['wait', id], { timeoutMs: PROMPT_MS });
      expect(w.code, `docker wait: ${w.stderr}`).toBe(0);
      // Before the subreaper: 255 (unknown) unless the kernel still held the zombie's status.
      expect(w.stdout.trim()).toBe('3');
      const st = await inspectContainer(d, id);
      expect(st.State.Status).toBe('exited');
      expect(st.State.ExitCode).toBe(3);
      expect(d.log()).toMatch(/monitor .*(gone|killed|lost)/i);
      expect(d.log()).not.toMatch(/exit code is unknown/i);
      const ps = await d.docker(['ps', '-q', '--no-trunc']);
      expect(ps.stdout).not.toContain(id);
      await expectNoZombies(berthdPid(d));

      // The daemon beside it: its containers run and exit as usual, reported by their own monitors.
      const w7 = await other.docker(['wait', later], { timeoutMs: PROMPT_MS });
      expect(w7.stdout.trim()).toBe('7');
      expect((await inspectContainer(other, bystander)).State.Running).toBe(true);
      expect(other.log()).not.toMatch(/monitor .*(gone|killed|lost)/i);
      await expectNoZombies(berthdPid(other));

      const rm = await d.docker(['rm', id], { timeoutMs: PROMPT_MS });
      expect(rm.code, rm.stderr).toBe(0);
      expect(leftovers(d)).toEqual([]);
      await expectNoZombies(berthdPid(d));
      const rmOther = await other.docker(['rm', '-f', bystander, later], { timeoutMs: PROMPT_MS });
      expect(rmOther.code, rmOther.stderr).toBe(0);
      expect(leftovers(other)).toEqual([]);
      await expectNoZombies(berthdPid(other));
    }, 120_000); // two daemons, each loading the test image

    it('stop -t 1 and rm -f return promptly and leave nothing behind', async () => {
      d = await startBerthd();
      await d.loadTestImage();
      const a = await runDetached(d, 'stopme', 'sleep 1000');
      const b = await runDetached(d, 'rmme', 'sleep 1000');
      await killMonitor(d, a);
      await killMonitor(d, b);

      const stop = await d.docker(['stop', '-t', '1', a], { timeoutMs: PROMPT_MS });
      expect(stop.code, `docker stop: ${stop.stderr}`).toBe(0);
      const st = await inspectContainer(d, a);
      expect(st.State.Status).toBe('exited');
      // sh as the container's init ignores SIGTERM: berth SIGKILLed it, so it knows the code.
      expect(st.State.ExitCode).toBe(137);

      const rm = await d.docker(['rm', '-f', b], { timeoutMs: PROMPT_MS });
      expect(rm.code, `docker rm -f: ${rm.stderr}`).toBe(0);
      const rmA = await d.docker(['rm', a], { timeoutMs: PROMPT_MS });
      expect(rmA.code, rmA.stderr).toBe(0);
      expect(leftovers(d)).toEqual([]);
    });

    it('a monitor killed while berthd is down: the restarted daemon keeps the container managed and sees its end', async () => {
      first = await startBerthd({ args: ['--live-restore'] });
      d = first;
      await first.loadTestImage();
      const id = await runDetached(first, 'orphaned', 'sleep 1000');
      const pid = (await inspectContainer(first, id)).State.Pid;
      expect(await first.stop()).toBe(0);
      await killMonitor(first, id);

      d = await startBerthd({ dir: first.dir, args: ['--live-restore'] });
      const st = await inspectContainer(d, id);
      expect(st.State.Status).toBe('running');
      expect(st.State.Pid).toBe(pid);
      expect(d.log()).toMatch(/monitor .*(gone|killed|lost)/i);
      const stop = await d.docker(['stop', '-t', '1', id], { timeoutMs: PROMPT_MS });
      expect(stop.code, `docker stop: ${stop.stderr}`).toBe(0);
      expect((await inspectContainer(d, id)).State.ExitCode).toBe(137);
      expect(alive(pid)).toBe(false);
      const rm = await d.docker(['rm', id], { timeoutMs: PROMPT_MS });
      expect(rm.code, rm.stderr).toBe(0);
      expect(leftovers(d)).toEqual([]);
    });

    it.skipIf(noSubreaper !== null)(`an exec whose monitor is killed still ends with its real code: its dir and s/ link go, the container takes new execs${noSubreaper ? ` (skipped: ${noSubreaper})` : ''}`, async () => {
      d = await startBerthd({ launcher: PROMPT_INIT });
      await d.loadTestImage();
      const id = await runDetached(d, 'execs', 'sleep 1000');
      const execDir = path.join(d.execRoot, 'oci', id, 'exec');
      const running = d.docker(['exec', id, 'sh', '-c', 'sleep 2; exit 5'], { timeoutMs: PROMPT_MS });
      let execId = '';
      for (let i = 0; i < 100 && !execId; i++) {
        // `pid` (the exec's process, written by the runtime) comes after the attach handshake.
        const found = fs.existsSync(execDir) ? fs.readdirSync(execDir).filter((e) => fs.existsSync(path.join(execDir, e, 'pid'))) : [];
        execId = found[0] ?? '';
        if (!execId) await new Promise((r) => setTimeout(r, 50));
      }
      expect(execId, 'the exec started').not.toBe('');
      const pid = Number(fs.readFileSync(path.join(execDir, execId, 'conmon.pid'), 'utf8').trim());
      process.kill(pid, 'SIGKILL');
      await running; // its output stream was cut: the CLI returns (its status is not the point here)

      const link = path.join(d.execRoot, 'oci', 's', execId);
      for (let i = 0; i < 100 && (fs.existsSync(path.join(execDir, execId)) || isLink(link)); i++) await new Promise((r2) => setTimeout(r2, 100));
      expect(fs.existsSync(path.join(execDir, execId)), 'exec dir removed').toBe(false);
      expect(isLink(link), 's/<execId> link removed').toBe(false);
      expect(d.log()).toMatch(/monitor of exec .* is gone/);
      // berthd collected the orphaned exec process itself: its real exit code, not 255.
      const ex = await d.api('GET', `/exec/${execId}/json`);
      expect(ex.status, ex.body).toBe(200);
      expect((JSON.parse(ex.body) as { ExitCode: number }).ExitCode).toBe(5);
      await expectNoZombies(berthdPid(d));
      const ok = await d.docker(['exec', id, 'echo', 'ok'], { timeoutMs: PROMPT_MS });
      expect(ok.stdout).toBe('ok\n');
      const rm = await d.docker(['rm', '-f', id], { timeoutMs: PROMPT_MS });
      expect(rm.code, rm.stderr).toBe(0);
      expect(leftovers(d)).toEqual([]);
    });
  });

  function isLink(p: string): boolean {
    try {
      return fs.lstatSync(p).isSymbolicLink();
    } catch {
      return false;
    }
  }

  describe('a corrupt berth.json', () => {
    it('a running container stays running and managed after a restart; start does not kill it', async () => {
      first = await startBerthd({ args: ['--live-restore'] });
      d = first;
      await first.loadTestImage();
      const id = await runDetached(first, 'keep', 'sleep 1000');
      const down = await runDetached(first, 'down', 'sleep 2; exit 42');
      const before = await inspectContainer(first, id);
      expect(before.State.Running).toBe(true);
      expect(await first.stop()).toBe(0);

      for (const c of [id, down]) fs.writeFileSync(path.join(first.execRoot, 'oci', c, 'berth.json'), '{"id": "trunc');
      await new Promise((r) => setTimeout(r, 2500)); // `down` exits while no daemon runs

      d = await startBerthd({ dir: first.dir, args: ['--live-restore'] });
      const after = await inspectContainer(d, id);
      expect(after.State.Status).toBe('running');
      expect(after.State.Pid).toBe(before.State.Pid);
      expect(alive(before.State.Pid)).toBe(true);
      // The exit while down keeps its real code although the record was unreadable.
      expect((await inspectContainer(d, down)).State.ExitCode).toBe(42);

      // Its rootfs is still there and it is reachable.
      const ex = await d.docker(['exec', id, 'cat', '/proc/1/cmdline'], { timeoutMs: PROMPT_MS });
      expect(ex.code, ex.stderr).toBe(0);
      expect(ex.stdout).toContain('sleep');
      // A start of a running container changes nothing.
      const start = await d.docker(['start', id], { timeoutMs: PROMPT_MS });
      expect(start.code, start.stderr).toBe(0);
      expect(alive(before.State.Pid)).toBe(true);
      expect((await inspectContainer(d, id)).State.Pid).toBe(before.State.Pid);

      const stop = await d.docker(['stop', '-t', '1', id], { timeoutMs: PROMPT_MS });
      expect(stop.code, stop.stderr).toBe(0);
      expect(alive(before.State.Pid)).toBe(false);
      for (const c of [id, down]) {
        const rm = await d.docker(['rm', '-f', c], { timeoutMs: PROMPT_MS });
        expect(rm.code, rm.stderr).toBe(0);
      }
      expect(leftovers(d)).toEqual([]);
    });
  });
});
