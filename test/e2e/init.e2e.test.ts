/**
 * `docker run --init` through the real docker CLI against berthd (runc + conmon): with --init,
 * pid 1 is /sbin/docker-init (the host's tini, bind-mounted read-only) running the command, and
 * an orphan that exits is reaped; without it, pid 1 is the command and the same orphan stays a
 * zombie. daemon.json's `init` makes it the default (HostConfig.Init=false still opts out), an
 * `--init-path` that does not exist fails the start with an error naming it (nothing left
 * running), and `docker info` shows the init binary and its version.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, berthdSkipReason, removeTestImageTarball, startBerthd, type Berthd } from './helpers/berthd.js';
import { useBerthdWithTestImage } from './helpers/shared-berthd.js';

function initSkipReason(): string | null {
  const base = berthdSkipReason();
  if (base) return base;
  if (!fs.existsSync('/usr/bin/tini-static') && !fs.existsSync('/usr/bin/tini')) return 'no tini on this host (apt-get install -y tini-static)';
  return null;
}
const skip = initSkipReason();

/**
 * pid 1 of the container: `sh` makes an orphan (`sleep 1`, whose parent shell exits at once,
 * so it is re-parented to the container's reaper) and then execs `sleep 60`, which never waits.
 * Without an init the orphan's parent is that `sleep 60`: it stays a zombie. With an init it is reaped.
 */
const ORPHAN_CMD = 'sh -c "sleep 1 &"; exec sleep 60';
/** Each process of the container as "<comm> <state>", one a line. */
const PS = 'for f in /proc/[0-9]*/stat; do read -r pid comm state rest < "$f" && echo "$pid $comm $state"; done';

describe.skipIf(skip)(`--init through the docker CLI${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let d: Berthd;
  useBerthdWithTestImage((b) => (d = b));

  /** Poll the container's processes until the orphan has exited (gone or a zombie); returns the last listing. */
  async function afterOrphanExit(name: string): Promise<string> {
    for (;;) {
      const r = await d.docker(['exec', name, 'sh', '-c', PS]);
      expect(r.code, JSON.stringify(r)).toBe(0);
      const sleeping = r.stdout.split('\n').filter((l) => / \(sleep\) [^Z]$/.test(l));
      if (sleeping.length === 1) return r.stdout;
      await new Promise((res) => setTimeout(res, 200));
    }
  }

  it('with --init: pid 1 is docker-init running the command, and an orphan is reaped', async () => {
    const name = 'init-on';
    const r = await d.docker(['run', '-d', '--name', name, '--network', 'none', '--init', TEST_IMAGE, 'sh', '-c', ORPHAN_CMD]);
    expect(r.code, JSON.stringify(r)).toBe(0);
    try {
      const cmdline = await d.docker(['exec', name, 'sh', '-c', "tr '\\0' ' ' < /proc/1/cmdline"]);
      expect(cmdline.stdout.trim()).toBe(`/sbin/docker-init -- sh -c ${ORPHAN_CMD}`);
      const ps = await afterOrphanExit(name);
      expect(ps).not.toMatch(/ Z$/m);
      const ro = await d.docker(['exec', name, 'sh', '-c', 'grep " /sbin/docker-init " /proc/self/mountinfo']);
      expect(ro.stdout).toMatch(/ \/sbin\/docker-init ro[, ]/);
    } finally {
      await d.docker(['rm', '-f', name]);
    }
  }, 120_000);

  it('without --init: pid 1 is the command and the same orphan stays a zombie', async () => {
    const name = 'init-off';
    const r = await d.docker(['run', '-d', '--name', name, '--network', 'none', TEST_IMAGE, 'sh', '-c', ORPHAN_CMD]);
    expect(r.code, JSON.stringify(r)).toBe(0);
    try {
      const ps = await afterOrphanExit(name);
      expect(ps).toMatch(/^1 \(sleep\) S$/m);
      expect(ps).toMatch(/ \(sleep\) Z$/m);
    } finally {
      await d.docker(['rm', '-f', name]);
    }
  }, 120_000);

  it('docker info shows InitBinary docker-init and the version of the init binary', async () => {
    const r = await d.docker(['info', '--format', '{{json .}}']);
    expect(r.code, r.stderr).toBe(0);
    const info = JSON.parse(r.stdout) as { InitBinary: string; InitCommit: { ID: string } };
    expect(info.InitBinary).toBe('docker-init');
    expect(info.InitCommit.ID).toMatch(/^[0-9a-f.]+$/);
  }, 60_000);
});

describe.skipIf(skip)(`daemon.json init and init-path${skip ? ` (skipped: ${skip})` : ''}`, () => {
  const dirs: Berthd[] = [];
  const ownDirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await d.cleanup();
    // startBerthd leaves a directory it was given: these are the test's own
    for (const dir of ownDirs) fs.rmSync(dir, { recursive: true, force: true });
    removeTestImageTarball();
  }, 120_000);

  it('"init": true makes every container run under docker-init; --init=false opts out', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bd-init-'));
    ownDirs.push(dir);
    const cfg = path.join(dir, 'daemon.json');
    fs.writeFileSync(cfg, JSON.stringify({ init: true }));
    const d = await startBerthd({ dir, args: ['--config-file', cfg] });
    dirs.push(d);
    await d.loadTestImage();
    // `; true`: sh stays pid 1 (busybox sh execs a lone last command)
    const pid1 = "tr '\\0' ' ' < /proc/1/cmdline; true";
    const on = await d.docker(['run', '--rm', '--network', 'none', TEST_IMAGE, 'sh', '-c', pid1]);
    expect(on.code, JSON.stringify(on)).toBe(0);
    expect(on.stdout.trim()).toMatch(/^\/sbin\/docker-init -- sh -c /);
    const off = await d.docker(['run', '--rm', '--network', 'none', '--init=false', TEST_IMAGE, 'sh', '-c', pid1]);
    expect(off.code, JSON.stringify(off)).toBe(0);
    expect(off.stdout.trim()).toMatch(/^sh -c /);
  }, 180_000);

  it('--init-path to a missing binary: the start fails naming it, nothing keeps running', async () => {
    const d = await startBerthd({ args: ['--init-path', '/nonexistent/docker-init'] });
    dirs.push(d);
    await d.loadTestImage();
    const r = await d.docker(['run', '--name', 'no-init', '--network', 'none', '--init', TEST_IMAGE, 'true']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('/nonexistent/docker-init');
    const state = await d.docker(['inspect', '--format', '{{.State.Running}}', 'no-init']);
    expect(state.stdout.trim()).toBe('false');
    // without --init the same daemon runs containers
    const plain = await d.docker(['run', '--rm', '--network', 'none', TEST_IMAGE, 'true']);
    expect(plain.code, JSON.stringify(plain)).toBe(0);
  }, 180_000);
});
