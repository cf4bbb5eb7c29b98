/**
 * Exec that survives a daemon restart (issue 13), with real runc, conmon and the docker CLI:
 * berthd is SIGKILLed while `docker exec -d` processes run and started again on the same dirs.
 * GET /exec/{id}/json (the CLI has no `exec inspect`) still answers: an exec that is still
 * running shows Running with its pid, then its real exit code once it ends; one that ended while
 * no berthd ran shows the code its monitor wrote. Each exec waits for a file the test creates,
 * so nothing depends on how long a restart takes. Once the exits are saved the exec dirs go,
 * and `rm -f` leaves nothing. The failpoint `exec.exitBeforeSave` kills berthd between an exec's
 * exit and its save: the restarted berthd still gets the real code from the monitor's exit file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, berthdSkipReason, removeTestImageTarball, startBerthd, type Berthd } from './helpers/berthd.js';
import { inspectContainer, runFailpointRow } from './helpers/failpoints.js';

const skip = berthdSkipReason();

interface ExecInspect {
  ID: string;
  ContainerID: string;
  Running: boolean;
  ExitCode: number | null;
  Pid: number;
  ProcessConfig: { entrypoint: string; arguments: string[] };
}

async function execInspect(d: Berthd, execId: string): Promise<{ status: number; body: ExecInspect }> {
  const r = await d.api('GET', `/exec/${execId}/json`);
  return { status: r.status, body: (r.status === 200 ? JSON.parse(r.body) : r.body) as ExecInspect };
}

/** Polls (bounded) until `check` holds. */
async function until(what: string, check: () => boolean | Promise<boolean>, tries = 200): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** A shell line that waits for `file` inside the container, then exits with `code`. */
const waitThenExit = (file: string, code: number): string => `while [ ! -e ${file} ]; do sleep 0.1; done; exit ${code}`;

describe.skipIf(skip !== null)(`exec across a berthd restart${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let d: Berthd | undefined;
  afterAll(async () => {
    await d?.cleanup();
    // The restarted daemons run on the first one's dir, which their cleanup leaves in place.
    if (d) fs.rmSync(d.dir, { recursive: true, force: true });
    removeTestImageTarball();
  });

  it('docker exec -d survives SIGKILL of berthd: inspect answers, Running then the real exit code', async () => {
    const args = ['--live-restore'];
    d = await startBerthd({ args });
    await d.loadTestImage();
    const run = await d.docker(['run', '-d', '--name', 'c1', TEST_IMAGE, 'sleep', '1000']);
    expect(run.code, run.stderr).toBe(0);
    const id = run.stdout.trim();
    // One exec that ends after the restart, one that ends while no berthd runs.
    for (const [file, code] of [['/tmp/go-late', 7], ['/tmp/go-down', 9]] as const) {
      const ex = await d.docker(['exec', '-d', 'c1', 'sh', '-c', waitThenExit(file, code)]);
      expect(ex.code, ex.stderr).toBe(0);
    }
    const ids = JSON.parse((await d.docker(['inspect', '-f', '{{json .ExecIDs}}', 'c1'])).stdout) as string[];
    expect(ids).toHaveLength(2);
    const byFile = new Map<string, string>();
    for (const e of ids) byFile.set((await execInspect(d, e)).body.ProcessConfig.arguments[1]!.includes('go-late') ? 'late' : 'down', e);
    const late = byFile.get('late')!;
    const down = byFile.get('down')!;
    const before = (await execInspect(d, late)).body;
    expect(before).toMatchObject({ Running: true, ExitCode: null, ContainerID: id });
    expect(before.Pid).toBeGreaterThan(0);

    expect(await d.stop('SIGKILL')).toBe(128);
    // While no berthd runs: the second exec ends (its conmon writes the exit file).
    const pid = Number(JSON.parse(fs.readFileSync(path.join(d.dataRoot, 'containers', id, 'config.v2.json'), 'utf8')).State.Pid);
    fs.writeFileSync(`/proc/${pid}/root/tmp/go-down`, '');
    const downExit = path.join(d.execRoot, 'oci', id, 'exec', down, 'exit', id);
    await until('the exec to end while berthd is down', () => fs.existsSync(downExit) && fs.readFileSync(downExit, 'utf8').trim() !== '');

    d = await startBerthd({ dir: d.dir, args });
    const lateNow = await execInspect(d, late);
    expect(lateNow.status).toBe(200);
    expect(lateNow.body).toMatchObject({ ID: late, Running: true, ExitCode: null, Pid: before.Pid });
    await until('the exit of the exec that ended while berthd was down', async () => (await execInspect(d!, down)).body.Running === false);
    expect((await execInspect(d, down)).body).toMatchObject({ Running: false, ExitCode: 9, Pid: 0 });

    const touch = await d.docker(['exec', 'c1', 'touch', '/tmp/go-late']);
    expect(touch.code, touch.stderr).toBe(0);
    await until('the exec to end after the restart', async () => (await execInspect(d!, late)).body.Running === false);
    expect((await execInspect(d, late)).body).toMatchObject({ Running: false, ExitCode: 7, Pid: 0 });
    expect(JSON.parse((await d.docker(['inspect', '-f', '{{json .ExecIDs}}', 'c1'])).stdout)).toBeNull();
    // Saved, so the monitor's copy goes: no exec dir and no attach link are left.
    const execDir = path.join(d.execRoot, 'oci', id, 'exec');
    await until('the exec dirs to go', () => !fs.existsSync(execDir) || fs.readdirSync(execDir).length === 0);
    for (const e of [late, down]) expect(fs.existsSync(path.join(d.execRoot, 'oci', 's', e))).toBe(false);

    // And after one more restart (a clean stop this time) the codes are still there.
    expect(await d.stop('SIGTERM')).toBe(0);
    d = await startBerthd({ dir: d.dir, args });
    expect((await execInspect(d, late)).body).toMatchObject({ Running: false, ExitCode: 7 });
    expect((await execInspect(d, down)).body).toMatchObject({ Running: false, ExitCode: 9 });

    // The execs go with the container.
    const rm = await d.docker(['rm', '-f', 'c1']);
    expect(rm.code, rm.stderr).toBe(0);
    expect((await execInspect(d, late)).status).toBe(404);
    expect(fs.existsSync(path.join(d.dataRoot, 'containers', id))).toBe(false);
  }, 180_000);
});

describe.skipIf(skip !== null)(`failpoints of exec records${skip ? ` (skipped: ${skip})` : ''}`, () => {
  afterAll(removeTestImageTarball);
  it(
    'exec.exitBeforeSave: killed before an exec exit is saved, berthd restarts with the real code from the monitor',
    () =>
      runFailpointRow<{ execId?: string }>({
        point: 'exec.exitBeforeSave',
        prepare: async (d) => {
          const r = await d.docker(['run', '-d', '--name', 'c1', TEST_IMAGE, 'sleep', '1000']);
          expect(r.code, r.stderr).toBe(0);
          return {};
        },
        trigger: async (d, ctx) => {
          const created = await d.api('POST', '/containers/c1/exec', { Cmd: ['sh', '-c', 'sleep 0.5; exit 5'] });
          expect(created.status, created.body).toBe(201);
          ctx.execId = (JSON.parse(created.body) as { Id: string }).Id;
          return d.api('POST', `/exec/${ctx.execId}/start`, { Detach: true });
        },
        verify: async (d, ctx) => {
          await until('the exec exit to be restored', async () => (await execInspect(d, ctx.execId!)).body.Running === false);
          expect((await execInspect(d, ctx.execId!)).body).toMatchObject({ Running: false, ExitCode: 5 });
          const id = (await inspectContainer(d, 'c1')).Id;
          const execDir = path.join(d.execRoot, 'oci', id, 'exec');
          await until('the exec dir to go once its exit is saved', () => !fs.existsSync(execDir) || fs.readdirSync(execDir).length === 0);
        },
      }),
    120_000,
  );
});
