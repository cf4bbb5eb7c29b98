/**
 * docker checkpoint create/ls/rm and docker start --checkpoint through the REAL docker CLI
 * against a real berthd started with --experimental, whose default runtime is the
 * repository's fake OCI runtime CLI (test/fixtures/fake-oci-runtime: it checkpoints without
 * CRIU — its `checkpoint` writes the process's description into the image path and kills it,
 * its `restore` starts the process again with FAKE_OCI_RESTORED=1 — and says so in its
 * features document). Checked: the container's state after each step as `docker inspect`
 * and `docker ps` show it, the checkpoint directory (dockerd's layout), `--leave-running`,
 * `--checkpoint-dir`, a failing checkpoint (CRIU's log named, nothing listed), and a daemon
 * without --experimental. The real runc + CRIU case runs only where `criu check` passes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, berthdSkipReason, removeTestImageTarball, startBerthd, type Berthd } from './helpers/berthd.js';
import { FAKE_RUNTIME, criuSkipReason } from './runtime-helpers.js';

const skip = berthdSkipReason();
if (skip) console.warn(`checkpoint e2e skipped: ${skip}`);

/** A container that says whether it was restored, then waits. */
const REPORTING = ['sh', '-c', 'echo "started restored=${FAKE_OCI_RESTORED:-0}"; exec sleep 1000'];

async function inspectState(d: Berthd, name: string): Promise<{ Status: string; Running: boolean; ExitCode: number; Pid: number }> {
  const r = await d.docker(['inspect', '--format', '{{json .State}}', name]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

async function lsNames(d: Berthd, args: string[]): Promise<string[]> {
  const r = await d.docker(['checkpoint', 'ls', ...args]);
  expect(r.code, r.stderr).toBe(0);
  const lines = r.stdout.trim().split('\n');
  expect(lines[0]).toBe('CHECKPOINT NAME');
  return lines.slice(1).map((l) => l.trim());
}

async function logsOf(d: Berthd, name: string): Promise<string> {
  const r = await d.docker(['logs', name]);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout;
}

async function runDetached(d: Berthd, name: string, extra: string[] = [], cmd: string[] = REPORTING): Promise<string> {
  const r = await d.docker(['run', '-d', '--name', name, ...extra, TEST_IMAGE, ...cmd]);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim();
}

describe.skipIf(skip !== null)(`docker checkpoint with the fake OCI runtime (berthd --experimental)${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let d: Berthd;

  beforeAll(async () => {
    d = await startBerthd({ args: ['--experimental', '--add-runtime', `fake=${FAKE_RUNTIME}`, '--default-runtime', 'fake'] });
    await d.loadTestImage();
  }, 60_000);
  afterAll(async () => {
    if (d) {
      for (const n of ['cp-exit', 'cp-live', 'cp-dir', 'cp-fail']) await d.docker(['rm', '-f', n]).catch(() => undefined);
      await d.cleanup();
    }
    removeTestImageTarball();
  });

  it('checkpoint create stops the container (Exited 137), ls lists it, start --checkpoint restores it running, rm removes it', async () => {
    const id = await runDetached(d, 'cp-exit');
    const cc = await d.docker(['checkpoint', 'create', 'cp-exit', 'first']);
    expect(cc.code, cc.stderr).toBe(0);
    expect(cc.stdout.trim()).toBe('first');
    expect(await inspectState(d, 'cp-exit')).toMatchObject({ Status: 'exited', Running: false, ExitCode: 137, Pid: 0 });
    const ps = await d.docker(['ps', '-a', '--filter', 'name=cp-exit', '--format', '{{.Status}}']);
    expect(ps.stdout).toMatch(/^Exited \(137\)/);

    // dockerd's layout: <data-root>/containers/<id>/checkpoints/<name>/, the runtime's files right in it
    const dir = path.join(d.dataRoot, 'containers', id, 'checkpoints');
    expect(fs.readdirSync(dir)).toEqual(['first']);
    expect(fs.readdirSync(path.join(dir, 'first')).sort()).toEqual(['berth', 'berth-checkpoint.json', 'fake-checkpoint.json']);
    // network-basic's files as the process left them, for the restore
    expect(fs.readdirSync(path.join(dir, 'first', 'berth', 'network-basic')).sort()).toEqual(['hostname', 'hosts', 'resolv.conf']);
    expect(await lsNames(d, ['cp-exit'])).toEqual(['first']);

    const st = await d.docker(['start', '--checkpoint', 'first', 'cp-exit']);
    expect(st.code, st.stderr).toBe(0);
    expect(await inspectState(d, 'cp-exit')).toMatchObject({ Status: 'running', Running: true });
    await expect.poll(() => logsOf(d, 'cp-exit'), { timeout: 10_000 }).toContain('started restored=1');
    // the restored process is monitored like any other: docker kill ends it and its exit is seen
    expect((await d.docker(['kill', 'cp-exit'])).code).toBe(0);
    expect(await inspectState(d, 'cp-exit')).toMatchObject({ Status: 'exited', Running: false, ExitCode: 137 });

    const rm = await d.docker(['checkpoint', 'rm', 'cp-exit', 'first']);
    expect(rm.code, rm.stderr).toBe(0);
    expect(await lsNames(d, ['cp-exit'])).toEqual([]);
    expect(fs.readdirSync(dir)).toEqual([]);
  }, 60_000);

  it('--leave-running: the container keeps running; a second name, and a name in use is refused', async () => {
    await runDetached(d, 'cp-live');
    expect((await d.docker(['checkpoint', 'create', '--leave-running', 'cp-live', 'one'])).code).toBe(0);
    expect(await inspectState(d, 'cp-live')).toMatchObject({ Status: 'running', Running: true });
    expect((await d.docker(['checkpoint', 'create', '--leave-running', 'cp-live', 'two'])).code).toBe(0);
    expect(await lsNames(d, ['cp-live'])).toEqual(['one', 'two']);
    const again = await d.docker(['checkpoint', 'create', '--leave-running', 'cp-live', 'one']);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain('checkpoint with name one already exists for container cp-live');
    const bad = await d.docker(['checkpoint', 'create', '--leave-running', 'cp-live', '../escape']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('invalid checkpoint ID "../escape"');
    expect(await inspectState(d, 'cp-live')).toMatchObject({ Status: 'running', Running: true });
  }, 60_000);

  it('--checkpoint-dir: create, ls, start and rm in a directory of the client', async () => {
    const id = await runDetached(d, 'cp-dir');
    const store = path.join(d.dir, 'my-checkpoints');
    expect((await d.docker(['checkpoint', 'create', '--checkpoint-dir', store, 'cp-dir', 'here'])).code).toBe(0);
    expect(fs.readdirSync(store)).toEqual(['here']);
    expect(fs.existsSync(path.join(d.dataRoot, 'containers', id, 'checkpoints', 'here'))).toBe(false);
    expect(await lsNames(d, ['--checkpoint-dir', store, 'cp-dir'])).toEqual(['here']);
    expect(await lsNames(d, ['cp-dir'])).toEqual([]);
    const st = await d.docker(['start', '--checkpoint', 'here', '--checkpoint-dir', store, 'cp-dir']);
    expect(st.code, st.stderr).toBe(0);
    expect(await inspectState(d, 'cp-dir')).toMatchObject({ Status: 'running', Running: true });
    expect((await d.docker(['checkpoint', 'rm', '--checkpoint-dir', store, 'cp-dir', 'here'])).code).toBe(0);
    expect(fs.readdirSync(store)).toEqual([]);
  }, 60_000);

  it("a checkpoint the runtime fails: the error names CRIU's log, nothing is listed or left, the container runs on", async () => {
    const id = await runDetached(d, 'cp-fail', ['-e', 'FAKE_OCI_CHECKPOINT_FAIL=cannot dump this one']);
    const cc = await d.docker(['checkpoint', 'create', 'cp-fail', 'broken']);
    expect(cc.code).not.toBe(0);
    expect(cc.stderr).toContain('Cannot checkpoint container cp-fail');
    expect(cc.stderr).toContain('cannot dump this one');
    const log = /(\/\S+criu-dump\.log)/.exec(cc.stderr)?.[1];
    expect(log, cc.stderr).toBeDefined();
    expect(fs.readFileSync(log!, 'utf8')).toContain('cannot dump this one');
    expect(await lsNames(d, ['cp-fail'])).toEqual([]);
    expect(fs.readdirSync(path.join(d.dataRoot, 'containers', id, 'checkpoints'))).toEqual([]);
    expect(await inspectState(d, 'cp-fail')).toMatchObject({ Status: 'running', Running: true });
  }, 60_000);
});

describe.skipIf(skip !== null)(`checkpoints without --experimental${skip ? ` (skipped: ${skip})` : ''}`, () => {
  it("the checkpoint routes answer dockerd's 501 and start --checkpoint a 400", async () => {
    const d = await startBerthd({ args: ['--add-runtime', `fake=${FAKE_RUNTIME}`, '--default-runtime', 'fake'] });
    try {
      const ls = await d.api('GET', '/containers/nobody/checkpoints');
      expect(ls.status).toBe(501);
      expect(JSON.parse(ls.body).message).toContain('This experimental feature is disabled by default');
      const st = await d.api('POST', '/containers/nobody/start?checkpoint=cp1');
      expect(st.status).toBe(400);
      expect(JSON.parse(st.body).message).toBe('checkpoint is only supported in experimental mode');
      // the docker CLI reads the daemon's Docker-Experimental header and says why itself
      const cli = await d.docker(['checkpoint', 'ls', 'nobody']);
      expect(cli.code).not.toBe(0);
    } finally {
      await d.cleanup();
    }
  }, 60_000);
});

const criu = skip ?? criuSkipReason();
if (criu) console.warn(`checkpoint e2e with runc + CRIU skipped: ${criu}`);

describe.skipIf(criu !== null)(`docker checkpoint with runc + CRIU${criu ? ` (skipped: ${criu})` : ''}`, () => {
  it('checkpoint create, then start --checkpoint restores the process with its memory', async () => {
    const d = await startBerthd({ args: ['--experimental'] });
    try {
      await d.loadTestImage();
      // a counter in memory: after the restore it goes on from where it was, not from 0
      const r = await d.docker(['run', '-d', '--name', 'criu1', '--security-opt', 'seccomp=unconfined', TEST_IMAGE, 'sh', '-c', 'i=0; while true; do i=$((i+1)); echo "n=$i"; sleep 0.2; done']);
      expect(r.code, r.stderr).toBe(0);
      await expect.poll(() => logsOf(d, 'criu1'), { timeout: 10_000 }).toContain('n=5');
      const cc = await d.docker(['checkpoint', 'create', 'criu1', 'mem']);
      expect(cc.code, cc.stderr).toBe(0);
      expect(await inspectState(d, 'criu1')).toMatchObject({ Running: false });
      const before = (await logsOf(d, 'criu1')).trim().split('\n').length;
      const st = await d.docker(['start', '--checkpoint', 'mem', 'criu1']);
      expect(st.code, st.stderr).toBe(0);
      await expect.poll(async () => (await logsOf(d, 'criu1')).trim().split('\n').length, { timeout: 10_000 }).toBeGreaterThan(before + 2);
      // the first line after the restore goes on counting (a fresh start would print n=1)
      const next = (await logsOf(d, 'criu1')).trim().split('\n')[before]!;
      expect(next).toMatch(/^n=\d+$/);
      expect(Number(next.slice(2))).toBeGreaterThanOrEqual(before);
      await d.docker(['rm', '-f', 'criu1']);
    } finally {
      await d.cleanup();
    }
  }, 120_000);
});
