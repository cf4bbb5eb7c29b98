/**
 * The real docker CLI against a real berthd (runc + conmon + the image store):
 * - `docker ps -s` / `docker inspect -s` show the container layer's measured size;
 * - `--berth-rootfs-dir`: an image name that is not in the image store runs on the plain
 *   directory of that name, even though an image store is present.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, berthdSkipReason, bytesOf, removeTestImageTarball, startBerthd, type Berthd } from './helpers/berthd.js';

const skip = berthdSkipReason();

describe.skipIf(skip)(`container sizes and plain rootfs directories through the docker CLI${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let d: Berthd;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-sizes-'));
  const rootfsDir = path.join(tmp, 'rootfs');
  const ok = async (args: string[]) => {
    const r = await d.docker(args);
    expect(r.code, `docker ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout.trim();
  };

  beforeAll(async () => {
    fs.mkdirSync(rootfsDir);
    d = await startBerthd({ args: ['--berth-rootfs-dir', rootfsDir] });
    await d.loadTestImage();
  }, 120_000);
  afterAll(async () => {
    await d?.docker(['rm', '-f', 'sized', 'fresh', 'plain', 'exporter']).catch(() => {});
    await d?.cleanup();
    removeTestImageTarball();
    fs.rmSync(tmp, { recursive: true, force: true });
  }, 120_000);

  it('ps -s and inspect -s report what the container wrote', async () => {
    await ok(['run', '--name', 'sized', '--network', 'none', TEST_IMAGE, 'sh', '-c', 'head -c 300000 /dev/urandom > /blob']);
    await ok(['create', '--name', 'fresh', '--network', 'none', TEST_IMAGE, 'true']);
    const imageSize = Number(await ok(['image', 'inspect', '--format', '{{.Size}}', TEST_IMAGE]));
    expect(imageSize).toBeGreaterThan(0);

    // Without -s the fields are absent (dockerd leaves them out).
    expect(await ok(['inspect', '--format', '{{json .SizeRw}} {{json .SizeRootFs}}', 'sized'])).toBe('null null');

    const [rw, rootfs] = (await ok(['inspect', '-s', '--format', '{{.SizeRw}} {{.SizeRootFs}}', 'sized'])).split(' ').map(Number);
    expect(rw).toBeGreaterThanOrEqual(300_000);
    expect(rw).toBeLessThan(300_000 + 64 * 1024);
    expect(rootfs).toBeGreaterThanOrEqual(imageSize);
    expect(rootfs).toBeGreaterThanOrEqual(imageSize + rw! - 64 * 1024);

    const [freshRw, freshRootfs] = (await ok(['inspect', '-s', '--format', '{{.SizeRw}} {{.SizeRootFs}}', 'fresh'])).split(' ').map(Number);
    expect(freshRw).toBeLessThan(64 * 1024);
    expect(freshRootfs).toBeGreaterThanOrEqual(imageSize);

    // docker ps -s: "<rw> (virtual <rootfs>)"
    const line = await ok(['ps', '-a', '-s', '--filter', 'name=^sized$', '--format', '{{.Names}}|{{.Size}}']);
    const m = /^sized\|(.+) \(virtual (.+)\)$/.exec(line);
    expect(m, line).not.toBeNull();
    expect(bytesOf(m![1]!)).toBeGreaterThanOrEqual(290_000);
    expect(bytesOf(m![2]!)).toBeGreaterThanOrEqual(imageSize * 0.99);
  });

  it('--berth-rootfs-dir: a name missing from the image store runs on the directory of that name', async () => {
    // The plain rootfs: the test image's files, exported from a running container of it
    // (berthd exports only mounted root filesystems).
    await ok(['run', '-d', '--name', 'exporter', '--network', 'none', TEST_IMAGE, 'sleep', '300']);
    const tar = path.join(tmp, 'exporter.tar');
    await ok(['export', '-o', tar, 'exporter']);
    await ok(['rm', '-f', 'exporter']);
    const plainDir = path.join(rootfsDir, 'plainbox');
    fs.mkdirSync(plainDir);
    execFileSync('tar', ['-xf', tar, '-C', plainDir]);
    fs.writeFileSync(path.join(plainDir, 'marker'), 'from the plain directory\n');

    const r = await d.docker(['run', '--name', 'plain', '--network', 'none', 'plainbox', 'cat', '/marker']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('from the plain directory\n');
    expect(await ok(['inspect', '--format', '{{.Image}}|{{.Config.Image}}|{{.GraphDriver.Data.MergedDir}}', 'plain'])).toBe(`|plainbox|${plainDir}`);
    // Still a 404 for a name that is neither in the store nor a directory.
    const miss = await d.docker(['create', '--pull', 'never', 'nowhere-at-all', 'true']);
    expect(miss.code).not.toBe(0);
    expect(miss.stderr).toContain('No such image');
  });
});
