import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseGroup, parsePasswd, resolveInRoot, resolveUser, resolveUserFromEntries } from '../../src/spec/index.js';
import { build, rejection, tempDir, tempRootfs, thrown } from './helpers.js';

let r: { dir: string; cleanup: () => void };
beforeAll(() => {
  r = tempRootfs();
});
afterAll(() => r.cleanup());

describe('parsePasswd / parseGroup', () => {
  it('parses entries and skips comments and malformed lines', () => {
    const p = parsePasswd('# c\nroot:x:0:0:root:/root:/bin/sh\nbroken\nbad:x:notanumber:0::/:/bin/sh\n\nalice:x:1000:1000::/home/alice:/bin/sh\n');
    expect(p.map((e) => [e.name, e.uid, e.gid])).toEqual([
      ['root', 0, 0],
      ['alice', 1000, 1000],
    ]);
    const g = parseGroup('users:x:100:alice, bob\nwheel:x:10:\n#x:x:1:\nbad:x:y:\n');
    expect(g).toEqual([
      { name: 'users', gid: 100, members: ['alice', 'bob'] },
      { name: 'wheel', gid: 10, members: [] },
    ]);
  });
});

describe('resolveUser (fixture rootfs: alice 1000:1000 in users+audio, bob 1001:100 in audio+video)', () => {
  it.each<[string, string[], { uid: number; gid: number; additionalGids: number[] }]>([
    ['', [], { uid: 0, gid: 0, additionalGids: [0] }],
    ['root', [], { uid: 0, gid: 0, additionalGids: [0] }],
    ['alice', [], { uid: 1000, gid: 1000, additionalGids: [1000, 100, 29] }],
    ['1001', [], { uid: 1001, gid: 100, additionalGids: [100, 29, 44] }],
    ['bob:video', ['audio', '4242'], { uid: 1001, gid: 44, additionalGids: [44, 29, 4242] }],
    ['alice:29', [], { uid: 1000, gid: 29, additionalGids: [29] }],
    ['1234:5678', [], { uid: 1234, gid: 5678, additionalGids: [5678] }],
    ['1234', [], { uid: 1234, gid: 0, additionalGids: [0] }],
    ['', ['video'], { uid: 0, gid: 0, additionalGids: [0, 44] }],
  ])('User %j GroupAdd %j', async (user, groupAdd, expected) => {
    expect(await resolveUser(r.dir, user, groupAdd)).toEqual(expected);
  });

  it('unknown user name → dockerd\'s message, InvalidParameter', async () => {
    const err = await rejection(resolveUser(r.dir, 'nobodyx'));
    expect(err.kind).toBe('InvalidParameter');
    expect(err.message).toBe('unable to find user nobodyx: no matching entries in passwd file');
  });

  it('unknown group name → dockerd\'s message', async () => {
    expect((await rejection(resolveUser(r.dir, 'alice:nogroupx'))).message).toBe(
      'unable to find group nogroupx: no matching entries in group file',
    );
  });

  it('unknown GroupAdd → dockerd\'s message (capital U)', async () => {
    const err = await rejection(resolveUser(r.dir, '', ['nogroupx']));
    expect(err.kind).toBe('InvalidParameter');
    expect(err.message).toBe('Unable to find group nogroupx: no matching entries in group file');
  });

  it('refuses ids out of range', () => {
    expect(thrown(() => resolveUserFromEntries('4294967296', [], [])).message).toBe('uids and gids must be in range 0-2147483647');
  });

  it('without /etc/passwd and /etc/group: numeric ids work, names do not', async () => {
    const empty = tempDir();
    try {
      expect(await resolveUser(empty.dir, '42:43')).toEqual({ uid: 42, gid: 43, additionalGids: [43] });
      expect((await rejection(resolveUser(empty.dir, 'alice'))).message).toBe('unable to find user alice: no matching entries in passwd file');
    } finally {
      empty.cleanup();
    }
  });

  it('follows symlinks inside the rootfs, never out of it', async () => {
    const t = tempDir();
    try {
      mkdirSync(path.join(t.dir, 'etc'));
      mkdirSync(path.join(t.dir, 'srv'));
      writeFileSync(path.join(t.dir, 'srv/passwd'), 'mallory:x:666:667::/:/bin/sh\n');
      // an absolute link and an escaping relative link both stay in the rootfs
      symlinkSync('../../../../../../srv/passwd', path.join(t.dir, 'etc/passwd'));
      symlinkSync('/srv/group', path.join(t.dir, 'etc/group'));
      writeFileSync(path.join(t.dir, 'srv/group'), 'evil:x:668:mallory\n');
      expect(await resolveUser(t.dir, 'mallory')).toEqual({ uid: 666, gid: 667, additionalGids: [667, 668] });
      expect(await resolveInRoot(t.dir, '/etc/passwd')).toBe(path.join(t.dir, 'srv/passwd'));
      expect(await resolveInRoot(t.dir, '/../../etc/shadow')).toBe(path.join(t.dir, 'etc/shadow'));
    } finally {
      rmSync(t.dir, { recursive: true, force: true });
    }
  });

  it('reports a symlink loop instead of hanging', async () => {
    const t = tempDir();
    try {
      mkdirSync(path.join(t.dir, 'etc'));
      symlinkSync('/etc/passwd', path.join(t.dir, 'etc/passwd'));
      const err = await rejection(resolveInRoot(t.dir, '/etc/passwd'));
      expect((err as NodeJS.ErrnoException).code).toBe('ELOOP');
    } finally {
      t.cleanup();
    }
  });
});

describe('User in the built spec', () => {
  it('sets process.user from Config.User and HostConfig.GroupAdd', async () => {
    const spec = await build(r.dir, { User: 'bob:video' }, { GroupAdd: ['audio', '4242'] });
    expect(spec.process!.user).toEqual({ uid: 1001, gid: 44, additionalGids: [44, 29, 4242] });
  });

  it('fails the build for an unknown user', async () => {
    await expect(build(r.dir, { User: 'ghost' })).rejects.toMatchObject({
      kind: 'InvalidParameter',
      message: 'unable to find user ghost: no matching entries in passwd file',
    });
  });
});
