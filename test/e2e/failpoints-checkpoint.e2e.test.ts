/**
 * Crash consistency of checkpoint and restore (issue 13, "Crash-safe"): berthd --experimental,
 * with the fake OCI runtime CLI as its default runtime (it checkpoints without CRIU), is
 * SIGKILLed at `checkpoint.afterDump` (the runtime wrote the checkpoint into its temporary
 * directory, nothing published) and at `restore.afterRuntimeCreate` (the runtime restored the
 * process, the running state not saved), then restarted on the same dirs. The container must
 * be reported as it really is, the half-written checkpoint never listed (and swept), and the
 * next checkpoint or start must work. Rows run through helpers/failpoints.ts (rm -f and the
 * leftover check at the end of each).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, berthdSkipReason, removeTestImageTarball, type Berthd } from './helpers/berthd.js';
import { inspectContainer, runFailpointRow, type FailpointRow } from './helpers/failpoints.js';
import { FAKE_RUNTIME } from './runtime-helpers.js';

const skip = berthdSkipReason();

interface Ctx {
  id: string;
}

const ARGS = ['--experimental', '--add-runtime', `fake=${FAKE_RUNTIME}`, '--default-runtime', 'fake'];
const REPORTING = ['sh', '-c', 'echo "started restored=${FAKE_OCI_RESTORED:-0}"; exec sleep 1000'];

async function lsNames(d: Berthd, name: string): Promise<string[]> {
  const r = await d.docker(['checkpoint', 'ls', name]);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim().split('\n').slice(1).map((l) => l.trim());
}

function checkpointsDir(d: Berthd, id: string): string[] {
  const dir = path.join(d.dataRoot, 'containers', id, 'checkpoints');
  return fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
}

async function runReporting(d: Berthd): Promise<Ctx> {
  const r = await d.docker(['run', '-d', '--name', 'c1', TEST_IMAGE, ...REPORTING]);
  expect(r.code, r.stderr).toBe(0);
  return { id: r.stdout.trim() };
}

const rows: Array<FailpointRow<Ctx> & { title: string }> = [
  {
    title: 'checkpoint.afterDump with --leave-running: the container runs on, the half-written checkpoint is never listed and is swept',
    point: 'checkpoint.afterDump',
    args: ARGS,
    prepare: runReporting,
    trigger: (d) => d.docker(['checkpoint', 'create', '--leave-running', 'c1', 'cp1']),
    verify: async (d, { id }) => {
      expect((await inspectContainer(d, id)).State).toMatchObject({ Status: 'running', Running: true });
      expect(await lsNames(d, 'c1')).toEqual([]);
      expect(checkpointsDir(d, id)).toEqual([]);
      // the name is free again: the checkpoint can be made now
      const again = await d.docker(['checkpoint', 'create', '--leave-running', 'c1', 'cp1']);
      expect(again.code, again.stderr).toBe(0);
      expect(await lsNames(d, 'c1')).toEqual(['cp1']);
    },
  },
  {
    title: 'checkpoint.afterDump (the checkpoint stops the container): reported exited with the runtime\'s exit code, nothing listed, it starts again',
    point: 'checkpoint.afterDump',
    args: ARGS,
    prepare: runReporting,
    trigger: (d) => d.docker(['checkpoint', 'create', 'c1', 'cp1']),
    verify: async (d, { id }) => {
      const st = (await inspectContainer(d, id)).State;
      expect(st).toMatchObject({ Status: 'exited', Running: false, Pid: 0, ExitCode: 137 });
      expect(await lsNames(d, 'c1')).toEqual([]);
      expect(checkpointsDir(d, id)).toEqual([]);
      const start = await d.docker(['start', 'c1']);
      expect(start.code, start.stderr).toBe(0);
      expect((await inspectContainer(d, id)).State).toMatchObject({ Status: 'running', Running: true });
    },
  },
  {
    title: 'restore.afterRuntimeCreate: the restored process runs and is reported running, the checkpoint stays listed',
    point: 'restore.afterRuntimeCreate',
    args: ARGS,
    prepare: async (d) => {
      const ctx = await runReporting(d);
      const cc = await d.docker(['checkpoint', 'create', 'c1', 'cp1']);
      expect(cc.code, cc.stderr).toBe(0);
      expect((await inspectContainer(d, ctx.id)).State.Status).toBe('exited');
      return ctx;
    },
    trigger: (d) => d.docker(['start', '--checkpoint', 'cp1', 'c1']),
    verify: async (d, { id }) => {
      expect((await inspectContainer(d, id)).State).toMatchObject({ Status: 'running', Running: true });
      await expect.poll(async () => (await d.docker(['logs', 'c1'])).stdout, { timeout: 10_000 }).toContain('started restored=1');
      expect(await lsNames(d, 'c1')).toEqual(['cp1']);
      // it is monitored: a stop ends it and its exit is seen
      expect((await d.docker(['stop', '-t', '1', 'c1'])).code).toBe(0);
      expect((await inspectContainer(d, id)).State).toMatchObject({ Status: 'exited', Running: false });
    },
  },
];

describe.skipIf(skip !== null)(`failpoints during checkpoint and restore${skip ? ` (skipped: ${skip})` : ''}`, () => {
  afterAll(removeTestImageTarball);
  for (const row of rows) it(row.title, () => runFailpointRow(row), 120_000);
});
