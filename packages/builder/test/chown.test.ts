/**
 * `--chown` values resolved as dockerd's classic builder does: numbers as they are, names from
 * the image's /etc/passwd and /etc/group (a symlinked /etc/passwd resolved inside the image's
 * root, never the host's), a user alone naming the group too, dockerd's error words.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chownNeedsImage, parseChownSpec, resolveChown } from '../src/chown.js';
import { FsTree } from '../src/tree.js';

let root = '';
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-chown-'));
  fs.mkdirSync(path.join(root, 'etc'));
  fs.mkdirSync(path.join(root, 'data'));
  fs.writeFileSync(path.join(root, 'data', 'passwd'), 'app:x:1001:1001::/home/app:/bin/sh\n');
  fs.symlinkSync('/data/passwd', path.join(root, 'etc', 'passwd')); // absolute: inside the image, not the host's /data
  fs.writeFileSync(path.join(root, 'etc', 'group'), 'app:x:1001:\nstaff:x:50:\n');
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

describe('--chown', () => {
  it('parses user[:group]; numbers need no image', () => {
    expect(parseChownSpec(undefined)).toBeNull();
    expect(parseChownSpec('app')).toEqual({ user: 'app', group: 'app' });
    expect(parseChownSpec('1:2')).toEqual({ user: '1', group: '2' });
    expect(() => parseChownSpec('a::')).toThrow(/invalid chown string format/);
    expect(chownNeedsImage(parseChownSpec('1:2'))).toBe(false);
    expect(chownNeedsImage(parseChownSpec('1:staff'))).toBe(true);
  });

  it('looks names up in the image (through its own symlinks)', async () => {
    const tree = new FsTree(root);
    expect(await resolveChown(parseChownSpec('app'), tree)).toEqual({ uid: 1001, gid: 1001 });
    expect(await resolveChown(parseChownSpec('app:staff'), tree)).toEqual({ uid: 1001, gid: 50 });
    expect(await resolveChown(parseChownSpec('0:staff'), tree)).toEqual({ uid: 0, gid: 50 });
    expect(await resolveChown(parseChownSpec('5:6'), null)).toEqual({ uid: 5, gid: 6 });
    await expect(resolveChown(parseChownSpec('root'), tree)).rejects.toThrow("can't find uid for user root: no such user: root");
    await expect(resolveChown(parseChownSpec('app'), null)).rejects.toThrow(/no such user: app/); // FROM scratch: no passwd
  });
});
