/**
 * Crash-consistency e2e helpers (issue 10 item 7): kill a real berthd at a named failpoint
 * (`BERTH_FAILPOINTS=<point>=kill`, packages/core/src/failpoint.ts), restart it on the same
 * dirs, check what a user sees, and check nothing was left behind on the host.
 *
 * A suite is a table of rows; each row names one failpoint and says how to get there, what
 * must be true after the restart, and how to finish (rm -f, retry):
 *
 *   const rows: FailpointRow[] = [{
 *     point: 'create.afterRecordSave',
 *     prepare: async (d) => ({}),                         // on a daemon without failpoints
 *     trigger: (d) => d.docker(['create', '--name', 'c1', TEST_IMAGE, 'true']),
 *     verify: async (d, ctx) => { ... expect(...) ... },  // after the restart
 *   }];
 *   const skip = berthdSkipReason();
 *   describe.skipIf(skip !== null)(`failpoints${skip ? ` (skipped: ${skip})` : ''}`, () => {
 *     afterAll(removeTestImageTarball);
 *     for (const row of rows) it(row.point, () => runFailpointRow(row), 120_000);
 *   });
 *
 * runFailpointRow: a daemon without failpoints loads the test image and runs `prepare`, stops
 * (live restore, so containers keep running), a daemon with the failpoint on runs `trigger`
 * and must die by SIGKILL having announced the point, a third daemon on the same dirs runs
 * `verify`; then every container is removed with `rm -f` and `assertNothingLeft` checks the
 * host. The temp dir is cleaned up even when a step fails.
 */
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { mountsMentioning, processesMentioning } from '../runtime-helpers.js';
import { startBerthd, type Berthd, type CliResult } from './berthd.js';

/** What one failpoint row does. `Ctx` is whatever `prepare` hands to the later steps. */
export interface FailpointRow<Ctx = Record<string, string>> {
  /** The failpoint's name, as declared with declareFailpoint(). */
  point: string;
  /** The action; `kill` (default) is the crash the suite is about. */
  action?: 'kill' | 'error' | 'enospc';
  /** Extra berthd flags for every daemon of this row (`--live-restore` is always added). */
  args?: string[];
  /** Whether the test image is loaded before `prepare` (default true). */
  loadImage?: boolean;
  /** Runs on a daemon without failpoints; set up what the trigger needs. */
  prepare?: (d: Berthd) => Promise<Ctx>;
  /** Runs on the daemon with the failpoint on; must reach the point. Its result goes to verify. */
  trigger: (d: Berthd, ctx: Ctx) => Promise<CliResult | unknown>;
  /** Runs on the restarted daemon: states, exit codes, retries. */
  verify: (d: Berthd, ctx: Ctx, triggered: unknown) => Promise<void>;
  /** How long the trigger may take to reach the point (default 30 s). */
  killTimeoutMs?: number;
}

/** The line failpoint() prints to stderr before it acts (packages/core/src/failpoint.ts). */
export function failpointHitLine(point: string, action = 'kill'): string {
  return `failpoint ${point}: ${action}`;
}

/** Start berthd with one failpoint on, on `dir` (a fresh temp dir when absent). */
export function startWithFailpoint(point: string, opts: { dir?: string; action?: string; args?: string[] } = {}): Promise<Berthd> {
  return startBerthd({ dir: opts.dir, args: opts.args, env: { BERTH_FAILPOINTS: `${point}=${opts.action ?? 'kill'}` } });
}

/** Waits until berthd dies (at most `timeoutMs`) and checks it was SIGKILLed at `point`. */
export async function expectKilledAt(d: Berthd, point: string, timeoutMs = 30_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutMs)));
  const res = await Promise.race([d.exited(), timeout]);
  clearTimeout(timer);
  if (res === 'timeout') throw new Error(`berthd did not reach failpoint ${point} within ${timeoutMs} ms:\n${d.log().slice(-4000)}`);
  expect(res, `berthd's exit at ${point}`).toEqual({ code: 128, signal: 'SIGKILL' });
  expect(d.log(), `berthd announced failpoint ${point}`).toContain(failpointHitLine(point));
}

/** Processes whose cgroup path names one of `ids` (a container's processes, runc init included). */
export function processesInCgroupsOf(ids: string[]): string[] {
  if (ids.length === 0) return [];
  const cgroupOf = (pid: string): string => {
    try {
      return fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8');
    } catch {
      return ''; // gone
    }
  };
  return fs
    .readdirSync('/proc')
    .filter((pid) => /^\d+$/.test(pid) && ids.some((id) => cgroupOf(pid).includes(id)))
    .map((pid) => `${pid} (in the cgroup of ${ids.find((id) => cgroupOf(pid).includes(id))!.slice(0, 12)})`);
}

function entries(dir: string, skip: string[] = []): string[] {
  try {
    return fs.readdirSync(dir).filter((e) => !skip.includes(e));
  } catch {
    return [];
  }
}

const seen = new Map<string, Set<string>>();

/**
 * Container IDs ever seen on the dirs of `d` (record dirs, rootfs dirs, bundles, runtime state),
 * remembered across its restarts, so processes of a container that lost every file still show.
 */
export function idsSeen(d: Berthd): Set<string> {
  const ids = seen.get(d.dir) ?? new Set<string>();
  seen.set(d.dir, ids);
  const oci = path.join(d.execRoot, 'oci');
  const dirs = [path.join(d.dataRoot, 'containers'), path.join(d.dataRoot, 'overlay'), oci, ...entries(path.join(oci, 'state')).map((rt) => path.join(oci, 'state', rt))];
  for (const dir of dirs) for (const e of entries(dir)) if (/^[0-9a-f]{64}$/.test(e)) ids.add(e);
  return ids;
}

function readPid(file: string): number {
  try {
    return Number(fs.readFileSync(file, 'utf8').trim());
  } catch {
    return 0;
  }
}

/** What a container (or an exec, or a layer) could leave on the host, as human-readable lines. */
export function leftovers(d: Berthd, keep: string[] = []): string[] {
  const oci = path.join(d.execRoot, 'oci');
  const kept = (e: string) => keep.some((k) => e.startsWith(k));
  const found: string[] = [];
  for (const e of entries(path.join(d.dataRoot, 'containers'))) if (!kept(e)) found.push(`record dir containers/${e}`);
  for (const e of entries(path.join(d.dataRoot, 'overlay'), ['l'])) if (!kept(e)) found.push(`rootfs dir overlay/${e}`);
  for (const e of entries(oci, ['exits', 's', 'state'])) if (!kept(e)) found.push(`bundle oci/${e}`);
  for (const e of entries(path.join(oci, 's'))) if (!kept(e)) found.push(`attach link oci/s/${e}`);
  for (const e of entries(path.join(oci, 'exits'))) if (!kept(e)) found.push(`exit file oci/exits/${e}`);
  for (const rt of entries(path.join(oci, 'state'))) for (const e of entries(path.join(oci, 'state', rt))) if (!kept(e)) found.push(`runtime state oci/state/${rt}/${e}`);
  for (const m of mountsMentioning(d.dir)) if (!keep.some((k) => m.includes(k))) found.push(`mount ${m.split(' ')[4]}`);
  // berthd itself (and a launcher it runs under: its pidfile names berthd) names the exec root on its command line: not a leftover.
  const own = [d.process.pid, readPid(d.pidfile)].map((pid) => `${pid}: `);
  for (const p of processesMentioning(d.execRoot)) if (!own.some((o) => p.startsWith(o)) && !keep.some((k) => p.includes(k))) found.push(`process ${p}`);
  const ids = [...idsSeen(d)].filter((id) => !kept(id));
  for (const p of processesInCgroupsOf(ids)) found.push(`process ${p}`);
  return found;
}

/** Checks that nothing but what belongs to `keep` (container IDs) is left on the host. */
export function assertNothingLeft(d: Berthd, keep: string[] = []): void {
  expect(leftovers(d, keep), 'leftovers on the host').toEqual([]);
}

/** Container IDs `docker ps -aq --no-trunc` lists. */
export async function allContainerIds(d: Berthd): Promise<string[]> {
  const r = await d.docker(['ps', '-aq', '--no-trunc']);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.split('\n').filter(Boolean).sort();
}

/** `docker inspect` of one container, parsed (throws with the CLI's error when it fails). */
export async function inspectContainer(d: Berthd, idOrName: string): Promise<{ Id: string; Name: string; State: { Status: string; Running: boolean; ExitCode: number; Pid: number; Error: string } }> {
  const r = await d.docker(['inspect', '--type', 'container', idOrName]);
  if (r.code !== 0) throw new Error(`docker inspect ${idOrName}: ${r.stderr}`);
  return (JSON.parse(r.stdout) as Array<Awaited<ReturnType<typeof inspectContainer>>>)[0]!;
}

/** `rm -f` every container, then assert nothing is left behind. */
export async function removeAllAndCheck(d: Berthd): Promise<void> {
  for (const id of await allContainerIds(d)) {
    const r = await d.docker(['rm', '-f', id]);
    expect(r.code, `rm -f ${id}: ${r.stderr}`).toBe(0);
  }
  expect(await allContainerIds(d)).toEqual([]);
  assertNothingLeft(d);
}

/** Runs one row end to end (see the file header). */
export async function runFailpointRow<Ctx>(row: FailpointRow<Ctx>): Promise<void> {
  const args = ['--live-restore', ...(row.args ?? [])];
  const first = await startBerthd({ args });
  const dir = first.dir;
  const daemons: Berthd[] = [first];
  try {
    if (row.loadImage !== false) await first.loadTestImage();
    const ctx = (row.prepare ? await row.prepare(first) : {}) as Ctx;
    expect(await first.stop()).toBe(0);

    const crashing = await startWithFailpoint(row.point, { dir, action: row.action, args });
    daemons.push(crashing);
    const triggered = row.trigger(crashing, ctx).catch((err: unknown) => err);
    await expectKilledAt(crashing, row.point, row.killTimeoutMs);
    const result = await triggered;
    idsSeen(crashing);

    const restarted = await startBerthd({ dir, args });
    daemons.push(restarted);
    await row.verify(restarted, ctx, result);
    await removeAllAndCheck(restarted);
  } finally {
    // A failed row may leave containers running: rm -f them while a daemon still serves.
    const last = daemons[daemons.length - 1]!;
    if ((await last.api('GET', '/_ping').catch(() => null))?.status === 200) {
      for (const id of await allContainerIds(last).catch(() => [])) await last.docker(['rm', '-f', id]).catch(() => undefined);
    }
    for (const d of daemons.reverse()) await d.cleanup();
    seen.delete(dir);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
