/**
 * docker cp / docker export on containers that do not run, with the real docker CLI against a
 * real berthd (runc + conmon + the image store): the root filesystem is mounted for each
 * request and unmounted after it, a start racing with cps keeps its mount, and no mount of the
 * container is left behind. Paths inside bind mounts are read and written in the bind's source,
 * as dockerd does, whether the container runs or not; a read-only bind is refused.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readMountInfoSync } from '@berth/core';
import { TEST_IMAGE, berthdSkipReason, removeTestImageTarball, startBerthd, type Berthd } from './helpers/berthd.js';

const skip = berthdSkipReason();

/** Mount points (this mount namespace, berthd's too) that belong to the container `id`. */
function mountsOf(id: string): string[] {
  return readMountInfoSync()
    .map((m) => m.mountPoint)
    .filter((m) => m.includes(id));
}

/**
 * No mount of `id` left: the unmount runs before the response ends, but a client that stops
 * reading once it has its file (docker cp out) closes before that; allow the release a moment.
 */
async function expectNoMounts(id: string): Promise<void> {
  const end = Date.now() + 3000;
  while (mountsOf(id).length > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 25));
  expect(mountsOf(id)).toEqual([]);
}

describe.skipIf(skip)(`docker cp and docker export on stopped containers (berthd)${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let d: Berthd;
  let driver = '';
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-archive-e2e-'));
  const ok = async (args: string[]) => {
    const r = await d.docker(args);
    expect(r.code, `docker ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout;
  };

  beforeAll(async () => {
    d = await startBerthd();
    await d.loadTestImage();
    driver = (await ok(['info', '--format', '{{.Driver}}'])).trim();
  }, 120_000);
  afterAll(async () => {
    await d?.docker(['rm', '-f', 'cpbox', 'racer', 'bindbox', 'bindidle']).catch(() => {});
    await d?.cleanup();
    removeTestImageTarball();
    fs.rmSync(tmp, { recursive: true, force: true });
  }, 120_000);

  it('cp into a created container, start -a prints it, cp out of and export the exited container; no mount remains', async () => {
    const id = (await ok(['create', '--name', 'cpbox', '--network', 'none', TEST_IMAGE, 'sh', '-c', 'cat /hello.txt; echo made-inside > /out.txt'])).trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    expect(mountsOf(id)).toEqual([]);

    const src = path.join(tmp, 'hello.txt');
    fs.writeFileSync(src, 'hello from the host\n');
    await ok(['cp', src, 'cpbox:/hello.txt']);
    expect(mountsOf(id)).toEqual([]);

    const started = await d.docker(['start', '-a', 'cpbox']);
    expect(started.code, started.stderr).toBe(0);
    expect(started.stdout).toBe('hello from the host\n');
    expect((await ok(['inspect', '--format', '{{.State.Status}} {{.State.ExitCode}}', 'cpbox'])).trim()).toBe('exited 0');
    // the exit's unmount follows the recorded exit (wait and attach end first)
    await expectNoMounts(id);

    const outDir = path.join(tmp, 'out');
    fs.mkdirSync(outDir);
    await ok(['cp', 'cpbox:/out.txt', path.join(outDir, 'out.txt')]);
    expect(fs.readFileSync(path.join(outDir, 'out.txt'), 'utf8')).toBe('made-inside\n');
    // a path the image brought (lower layer), through the same mount
    await ok(['cp', 'cpbox:/bin/busybox', path.join(outDir, 'busybox')]);
    expect(fs.statSync(path.join(outDir, 'busybox')).size).toBeGreaterThan(100_000);
    await expectNoMounts(id);

    const tar = path.join(tmp, 'cpbox.tar');
    await ok(['export', '-o', tar, 'cpbox']);
    const names = execFileSync('tar', ['-tf', tar], { encoding: 'utf8' }).split('\n');
    expect(names).toContain('hello.txt');
    expect(names).toContain('out.txt');
    expect(names).toContain('bin/busybox');
    expect(execFileSync('tar', ['-xOf', tar, 'hello.txt'], { encoding: 'utf8' })).toBe('hello from the host\n');
    expect(execFileSync('tar', ['-xOf', tar, 'out.txt'], { encoding: 'utf8' })).toBe('made-inside\n');

    // concurrent requests on one stopped container share the mount and leave none
    const rs = await Promise.all([
      d.docker(['cp', 'cpbox:/out.txt', path.join(outDir, 'a.txt')]),
      d.docker(['cp', 'cpbox:/hello.txt', path.join(outDir, 'b.txt')]),
      d.docker(['export', '-o', path.join(tmp, 'again.tar'), 'cpbox']),
      d.docker(['cp', src, 'cpbox:/hello2.txt']),
    ]);
    for (const r of rs) expect(r.code, r.stderr).toBe(0);
    expect(fs.readFileSync(path.join(outDir, 'b.txt'), 'utf8')).toBe('hello from the host\n');
    await expectNoMounts(id);
    // the rootfs is no longer mounted, yet the files are kept in the container layer
    await ok(['cp', 'cpbox:/hello2.txt', path.join(outDir, 'c.txt')]);
    expect(fs.readFileSync(path.join(outDir, 'c.txt'), 'utf8')).toBe('hello from the host\n');
    await expectNoMounts(id);
  }, 120_000);

  it('a start while an export holds the mount: the export ending leaves the running container mounted', async () => {
    const overlay = driver.startsWith('overlay');
    const id = (await ok(['create', '--name', 'racer', '--network', 'none', TEST_IMAGE, 'sh', '-c', 'sleep 3; cat /r1.txt /r2.txt && ls /bin/busybox && echo alive'])).trim();
    const src = path.join(tmp, 'race.txt');
    fs.writeFileSync(src, 'race\n');
    const big = path.join(tmp, 'big.bin');
    fs.writeFileSync(big, Buffer.alloc(48 * 1024 * 1024, 1));
    await ok(['cp', src, 'racer:/r1.txt']);
    await ok(['cp', big, 'racer:/big.bin']);
    await expectNoMounts(id);

    // An export of the created container, read slowly: it holds the mount while the start runs.
    let exported = 0;
    let res!: http.IncomingMessage;
    await new Promise<void>((resolve, reject) => {
      const req = http.request({ socketPath: d.socket, path: '/containers/racer/export' }, (r) => {
        res = r;
        expect(r.statusCode).toBe(200);
        r.once('data', (c: Buffer) => {
          exported += c.length;
          r.pause();
          resolve();
        });
      });
      req.on('error', reject);
      req.end();
    });
    if (overlay) expect(mountsOf(id).length).toBe(1);
    const rs = await Promise.all([d.docker(['start', 'racer']), d.docker(['cp', src, 'racer:/r2.txt'])]);
    for (const r of rs) expect(r.code, r.stderr).toBe(0);
    expect((await ok(['inspect', '--format', '{{.State.Running}}', 'racer'])).trim()).toBe('true');
    // finish the export: its lease is given back before the body ends
    await new Promise<void>((resolve, reject) => {
      res.on('data', (c: Buffer) => (exported += c.length));
      res.on('end', () => resolve());
      res.on('error', reject);
      res.resume();
    });
    expect(exported).toBeGreaterThan(48 * 1024 * 1024);
    // the container still runs on its root filesystem: it is still mounted (one mount, not stacked)
    if (overlay) expect(mountsOf(id).length).toBe(1);
    await ok(['cp', 'racer:/r1.txt', path.join(tmp, 'r1-back.txt')]);
    expect(fs.readFileSync(path.join(tmp, 'r1-back.txt'), 'utf8')).toBe('race\n');
    const code = (await ok(['wait', 'racer'])).trim();
    const logs = await d.docker(['logs', 'racer']);
    expect(code, logs.stdout + logs.stderr).toBe('0');
    // the files copied in around the start are in the root filesystem the container ran on
    expect(logs.stdout).toBe('race\nrace\n/bin/busybox\nalive\n');
    // exit processing (unmount) runs right after the exit
    await expectNoMounts(id);
  }, 120_000);

  it('docker cp in and out of bind mounts (running and created containers); a read-only bind is refused', async () => {
    const rw = path.join(tmp, 'bind-rw');
    const ro = path.join(tmp, 'bind-ro');
    fs.mkdirSync(rw);
    fs.mkdirSync(ro);
    fs.writeFileSync(path.join(rw, 'from-host.txt'), 'bind content\n');
    fs.writeFileSync(path.join(ro, 'ro.txt'), 'read-only\n');
    const src = path.join(tmp, 'into-bind.txt');
    fs.writeFileSync(src, 'copied in\n');
    const binds = ['-v', `${rw}:/data`, '-v', `${ro}:/ro:ro`];
    await ok(['run', '-d', '--name', 'bindbox', '--network', 'none', ...binds, TEST_IMAGE, 'sleep', '300']);
    await ok(['create', '--name', 'bindidle', '--network', 'none', ...binds, TEST_IMAGE, 'true']);
    for (const name of ['bindbox', 'bindidle']) {
      await ok(['cp', src, `${name}:/data/${name}.txt`]);
      expect(fs.readFileSync(path.join(rw, `${name}.txt`), 'utf8')).toBe('copied in\n');
      const out = path.join(tmp, `${name}-out.txt`);
      await ok(['cp', `${name}:/data/from-host.txt`, out]);
      expect(fs.readFileSync(out, 'utf8')).toBe('bind content\n');
      await ok(['cp', `${name}:/ro/ro.txt`, path.join(tmp, `${name}-ro.txt`)]);
      expect(fs.readFileSync(path.join(tmp, `${name}-ro.txt`), 'utf8')).toBe('read-only\n');
      const refused = await d.docker(['cp', src, `${name}:/ro/x.txt`]);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toContain('mounted volume is marked read-only');
      expect(fs.readdirSync(ro)).toEqual(['ro.txt']);
    }
    // the running container sees what docker cp wrote into its bind
    expect((await ok(['exec', 'bindbox', 'cat', '/data/bindidle.txt'])).trim()).toBe('copied in');
  }, 120_000);
});
