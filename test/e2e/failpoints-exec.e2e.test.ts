/**
 * Crash consistency of exec start (issue 10 item 7, the exec part): berthd is SIGKILLed at
 * `exec.afterRuntimeExec` — the exec process runs under its own conmon, the backend has not
 * recorded the session — and restarted on the same dirs. The exec's files under the bundle,
 * its `oci/s/<execId>` link and its monitor must all go (at the restore, or once the exec that
 * outlived the daemon ends), and the container must still run and take new execs. The rows run
 * through helpers/failpoints.ts (rm -f and the leftover check at the end of each).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, berthdSkipReason, removeTestImageTarball, type Berthd } from './helpers/berthd.js';
import { inspectContainer, runFailpointRow, type FailpointRow } from './helpers/failpoints.js';
import { processesMentioning } from './runtime-helpers.js';

const skip = berthdSkipReason();

interface Ctx {
  id: string;
}

function execLeftovers(d: Berthd, id: string): string[] {
  const oci = path.join(d.execRoot, 'oci');
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(oci, 's'))) if (e !== id) out.push(`link s/${e}`);
  const execDir = path.join(oci, id, 'exec');
  for (const e of fs.existsSync(execDir) ? fs.readdirSync(execDir) : []) out.push(`exec dir ${e}`);
  const own = `${fs.readFileSync(path.join(oci, id, 'conmon.pid'), 'utf8').trim()}: `;
  for (const p of processesMentioning(`-c ${id} -u `)) if (!p.startsWith(own)) out.push(`exec monitor ${p}`);
  return out;
}

/** Polls until the exec leftovers are gone (the exec that outlived the daemon has to end first). */
async function expectExecLeftoversGone(d: Berthd, id: string): Promise<void> {
  for (let i = 0; i < 150 && execLeftovers(d, id).length; i++) await new Promise((r) => setTimeout(r, 100));
  expect(execLeftovers(d, id)).toEqual([]);
}

function row(point: string, execCmd: string): FailpointRow<Ctx> {
  return {
    point,
    prepare: async (d) => {
      const r = await d.docker(['run', '-d', '--name', 'c1', TEST_IMAGE, 'sleep', '1000']);
      expect(r.code, r.stderr).toBe(0);
      return { id: r.stdout.trim() };
    },
    trigger: (d) => d.docker(['exec', 'c1', 'sh', '-c', execCmd]),
    verify: async (d, { id }) => {
      const st = await inspectContainer(d, id);
      expect(st.State.Status).toBe('running');
      await expectExecLeftoversGone(d, id);
      const ex = await d.docker(['exec', 'c1', 'echo', 'still fine'], { timeoutMs: 20_000 });
      expect(ex.code, ex.stderr).toBe(0);
      expect(ex.stdout).toBe('still fine\n');
      await expectExecLeftoversGone(d, id);
    },
  };
}

describe.skipIf(skip !== null)(`failpoints during exec start${skip ? ` (skipped: ${skip})` : ''}`, () => {
  afterAll(removeTestImageTarball);
  it('exec.afterRuntimeExec: an exec that ended while berthd was down', () => runFailpointRow(row('exec.afterRuntimeExec', 'true')), 120_000);
  it('exec.afterRuntimeExec: an exec that outlives the restart', () => runFailpointRow(row('exec.afterRuntimeExec', 'sleep 4')), 120_000);
});
