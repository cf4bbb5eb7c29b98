/**
 * `docker rm` of a container with a very deep tree in its writable layer (issue 12): 10,000
 * nested directories, a path far past PATH_MAX (written from the host, one chdir at a time: the
 * busybox shell's cd gives up past PATH_MAX, a container's own program need not). Node's recursive fs.rm gave up on such a
 * tree (ENAMETOOLONG) and the remove failed; the native addon's removeTrees walks it fd-relative
 * with a bounded number of open directories. Needs the addon (the fallback is Node's fs.rm).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nativeAddon, removeTrees } from '@berth/native';
import { TEST_IMAGE, berthdSkipReason, removeTestImageTarball, startBerthd, type Berthd } from './helpers/berthd.js';

const skip = berthdSkipReason() ?? (nativeAddon() ? null : 'native addon not built (the fallback, Node fs.rm, cannot remove a tree past PATH_MAX)');

describe.skipIf(skip)(`docker rm of a container that wrote a 10,000-deep tree${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let d: Berthd;
  /** The deep tree: removed here too when the test failed (the helper's fs.rm cannot). */
  let rw = '';

  beforeAll(async () => {
    d = await startBerthd();
    await d.loadTestImage();
  }, 120_000);
  afterAll(async () => {
    await d?.docker(['rm', '-f', 'deep']).catch(() => {});
    if (rw) await removeTrees(nativeAddon(), [rw]);
    await d?.cleanup();
    removeTestImageTarball();
  }, 120_000);

  it('is removed, its container dir and writable layer gone', async () => {
    const create = await d.docker(['create', '--name', 'deep', '--network', 'none', TEST_IMAGE, 'true']);
    expect(create.code, create.stderr).toBe(0);
    const id = create.stdout.trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    const layer = path.join(d.dataRoot, 'overlay', id);
    rw = fs.existsSync(path.join(layer, 'upper')) ? path.join(layer, 'upper') : path.join(layer, 'merged');
    const script = `const fs=require('fs');process.chdir(${JSON.stringify(rw)});for(let i=0;i<10000;i++){fs.mkdirSync('d');process.chdir('d');}fs.writeFileSync('leaf','x');`;
    execFileSync(process.execPath, ['-e', script]);
    const rm = await d.docker(['rm', 'deep']);
    expect(rm.code, rm.stderr).toBe(0);
    expect(fs.existsSync(path.join(d.dataRoot, 'overlay', id))).toBe(false);
    expect(fs.existsSync(path.join(d.dataRoot, 'containers', id))).toBe(false);
    expect((await d.docker(['ps', '-aq'])).stdout.trim()).toBe('');
  });
});
