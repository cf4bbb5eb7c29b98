/**
 * Crash consistency of the container service (issue 10 items 3 and 7): for each of core's
 * failpoints (packages/core/src/points.ts) berthd is SIGKILLed there in the middle of a docker
 * CLI command, restarted on the same dirs, and checked as a user would: `docker ps -a` lists
 * each container once with the right state and exit code, the interrupted command can be
 * redone (create, start) or completes by itself (rm), and after `rm -f` nothing is left on the
 * host — record dir, overlay dir, mount, bundle, `s/` link, runtime state, conmon or container
 * process (helpers/failpoints.ts). One row per point; other files add their own rows
 * (failpoints-exec, failpoints-image) through the same helper.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, berthdSkipReason, removeTestImageTarball, startBerthd, type Berthd } from './helpers/berthd.js';
import {
  allContainerIds,
  inspectContainer,
  processesInCgroupsOf,
  removeAllAndCheck,
  runFailpointRow,
  startWithFailpoint,
  type FailpointRow,
} from './helpers/failpoints.js';

interface Ctx {
  id?: string;
}

const skip = berthdSkipReason();
if (skip) console.warn(`failpoints e2e skipped: ${skip}`);

/**
 * A container that exits with 3 when it gets SIGUSR1 (so the exit happens on the crashing
 * daemon's watch); it says `ready` once the trap is set (a USR1 before that would kill it).
 */
const EXIT_ON_USR1 = ['sh', '-c', 'trap "exit 3" USR1; echo ready; while true; do sleep 0.1; done'];

/** Waits until the container has said `ready` `times` times (once per start). */
async function readyTimes(d: Berthd, name: string, times: number): Promise<void> {
  let seen = 0;
  for (let i = 0; i < 200 && seen < times; i++) {
    if (i) await new Promise((r) => setTimeout(r, 50));
    seen = (await d.docker(['logs', name])).stdout.split('\n').filter((l) => l === 'ready').length;
  }
  expect(seen, `${name} said ready`).toBeGreaterThanOrEqual(times);
}

async function ok(d: Berthd, args: string[]): Promise<string> {
  const r = await d.docker(args);
  expect(r.code, `docker ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r.stdout.trim();
}

/** `docker ps -a` as name → status text, to check nothing is lost or listed twice. */
async function psNames(d: Berthd): Promise<string[]> {
  const out = await ok(d, ['ps', '-a', '--format', '{{.Names}}']);
  return out.split('\n').filter(Boolean).sort();
}

async function expectState(d: Berthd, idOrName: string, status: string, exitCode?: number): Promise<void> {
  const st = (await inspectContainer(d, idOrName)).State;
  expect(status === 'running' ? [st.Status, st.Running, st.Pid > 0] : [st.Status, st.Running], `state of ${idOrName}`).toEqual(
    status === 'running' ? ['running', true, true] : [status, false],
  );
  if (exitCode !== undefined) expect(st.ExitCode, `exit code of ${idOrName}`).toBe(exitCode);
}

/** Create rows: the crash leaves no container (it is made again under the same name) or one whole container. */
function createRow(point: string, recordSaved: boolean): FailpointRow<Ctx> {
  return {
    point,
    trigger: (d) => d.docker(['create', '--name', 'c1', TEST_IMAGE, 'sleep', '1000']),
    verify: async (d) => {
      expect(await psNames(d)).toEqual(recordSaved ? ['c1'] : []);
      if (recordSaved) await expectState(d, 'c1', 'created', 0);
      else await ok(d, ['create', '--name', 'c1', TEST_IMAGE, 'sleep', '1000']);
      await ok(d, ['start', 'c1']);
      await expectState(d, 'c1', 'running');
      expect(await psNames(d)).toEqual(['c1']);
    },
  };
}

/** Start rows: the container is left created (redo the start) or adopted as running. */
function startRow(point: string, after: 'created' | 'running'): FailpointRow<Ctx> {
  return {
    point,
    prepare: async (d) => ({ id: await ok(d, ['create', '--name', 'c1', TEST_IMAGE, 'sleep', '1000']) }),
    trigger: (d) => d.docker(['start', 'c1']),
    verify: async (d, { id }) => {
      expect(await allContainerIds(d)).toEqual([id]);
      await expectState(d, 'c1', after, 0);
      if (after === 'created') await ok(d, ['start', 'c1']);
      await expectState(d, 'c1', 'running');
      // Managed: a stop reaches it and reports its exit (sleep as pid 1 ignores SIGTERM: 137 after -t 1).
      await ok(d, ['stop', '-t', '1', 'c1']);
      await expectState(d, 'c1', 'exited', 137);
      await ok(d, ['start', 'c1']);
      await expectState(d, 'c1', 'running');
    },
  };
}

/** Exit rows: the exit (code 3) seen by the crashing daemon is reported by the restarted one. */
function exitRow(point: string): FailpointRow<Ctx> {
  return {
    point,
    prepare: async (d) => {
      const id = await ok(d, ['run', '-d', '--name', 'c1', TEST_IMAGE, ...EXIT_ON_USR1]);
      await readyTimes(d, 'c1', 1);
      return { id };
    },
    trigger: (d) => d.docker(['kill', '-s', 'USR1', 'c1']),
    verify: async (d, { id }) => {
      expect(await allContainerIds(d)).toEqual([id]);
      await expectState(d, 'c1', 'exited', 3);
      expect(JSON.parse(await ok(d, ['wait', 'c1']))).toBe(3);
      // It can run again, and its next exit is seen too.
      await ok(d, ['start', 'c1']);
      await expectState(d, 'c1', 'running');
      await readyTimes(d, 'c1', 2);
      await ok(d, ['kill', '-s', 'USR1', 'c1']);
      expect(await ok(d, ['wait', 'c1'])).toBe('3');
    },
  };
}

/** rm rows: the removal the crash cut short is finished by the restart; nothing of the container stays. */
function removeRow(point: string): FailpointRow<Ctx> {
  return {
    point,
    prepare: async (d) => {
      const id = await ok(d, ['run', '-d', '--name', 'c1', TEST_IMAGE, 'sleep', '1000']);
      await ok(d, ['run', '-d', '--name', 'c2', TEST_IMAGE, 'sleep', '1000']);
      return { id };
    },
    trigger: (d) => d.docker(['rm', '-f', 'c1']),
    verify: async (d) => {
      expect(await psNames(d)).toEqual(['c2']);
      await expectState(d, 'c2', 'running');
      const again = await d.docker(['rm', '-f', 'c1']);
      expect(again.code).toBe(0); // dockerd's CLI: rm -f of a missing container succeeds silently
      // The name is free again.
      await ok(d, ['run', '-d', '--name', 'c1', TEST_IMAGE, 'sleep', '1000']);
    },
  };
}

const rows: FailpointRow<Ctx>[] = [
  createRow('create.afterRootfs', false),
  createRow('create.beforeRecordSave', false),
  createRow('create.afterRecordSave', true),
  startRow('start.afterRuntimeCreate', 'created'),
  startRow('start.afterRuntimeStart', 'running'),
  exitRow('exit.afterSeen'),
  exitRow('exit.beforeSave'),
  exitRow('exit.afterSave'),
  removeRow('remove.afterRemovingSave'),
  removeRow('remove.afterBackendDelete'),
];

describe.skipIf(skip !== null)(`a crash at any core failpoint leaves every container managed${skip ? ` (skipped: ${skip})` : ''}`, () => {
  afterAll(removeTestImageTarball);
  for (const row of rows) it(row.point, () => runFailpointRow(row), 120_000);

  // A running state that cannot be saved (a full disk at that instant) fails the start loudly.
  it('start.afterRuntimeStart=enospc: docker start fails with the error and nothing runs', async () => {
    const args = ['--live-restore'];
    const daemons: Berthd[] = [];
    try {
      const first = await startBerthd({ args });
      daemons.push(first);
      await first.loadTestImage();
      const id = await ok(first, ['create', '--name', 'c1', TEST_IMAGE, 'sleep', '1000']);
      expect(await first.stop()).toBe(0);

      const full = await startWithFailpoint('start.afterRuntimeStart', { dir: first.dir, action: 'enospc', args });
      daemons.push(full);
      const r = await full.docker(['start', 'c1']);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain('no space left on device');
      const st = (await inspectContainer(full, 'c1')).State;
      expect([st.Status, st.Running, st.Pid]).toEqual(['created', false, 0]);
      expect(st.Error).toContain('no space left on device');
      expect(fs.existsSync(path.join(full.execRoot, 'oci', id))).toBe(false);
      expect(processesInCgroupsOf([id])).toEqual([]);
      expect(await full.stop()).toBe(0);

      const d = await startBerthd({ dir: first.dir, args });
      daemons.push(d);
      await ok(d, ['start', 'c1']);
      await expectState(d, 'c1', 'running');
      await removeAllAndCheck(d);
    } finally {
      for (const d of daemons.reverse()) await d.cleanup();
    }
  }, 120_000);
});
