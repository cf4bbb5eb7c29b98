/**
 * The remap user's subordinate IDs (no root): subuid/subgid parsing (names or ids, several
 * ranges per user, comments), the errors that name the file and line, USER[:GROUP] lookup, the
 * ID maps dockerd builds from the ranges, and `default`'s berthremap creation (useradd through
 * a fake runner; ranges written under the file's lock when usermod cannot add them).
 */
import { mkdtemp, readFile, rm, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_REMAP_USER,
  SUBID_RANGE,
  ensureDefaultRemapUser,
  idFilesFromEnv,
  nextRangeStart,
  parseSubIdFile,
  remapIdMaps,
  resolveRemapIdentity,
  type IdFiles,
  type RunCommand,
} from '../src/index.js';

let dir: string;
let files: IdFiles;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'userns-subid-'));
  files = { passwd: join(dir, 'passwd'), group: join(dir, 'group'), subuid: join(dir, 'subuid'), subgid: join(dir, 'subgid') };
  await writeFile(files.passwd, 'root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n');
  await writeFile(files.group, 'root:x:0:\nalice:x:1000:\nstaff:x:50:\n');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('subuid/subgid files', () => {
  it('reads names and numeric ids, several ranges per user, and skips comments and blank lines', () => {
    const r = parseSubIdFile('# ranges\nalice:100000:65536\n\n1000:300000:10\n  # indented comment\nbob:200000:65536\n', '/etc/subuid');
    expect(r).toEqual([
      { owner: 'alice', start: 100000, count: 65536 },
      { owner: '1000', start: 300000, count: 10 },
      { owner: 'bob', start: 200000, count: 65536 },
    ]);
  });

  it.each([
    ['alice:100000', 'missing count'],
    ['alice:abc:10', 'not a number'],
    ['alice:100000:0', 'empty range'],
    [':100000:10', 'no owner'],
    ['alice:4294967295:2', 'past the last id'],
    ['alice:1:2:3', 'too many fields'],
  ])('a malformed line (%s: %s) is an error naming the file and line', (line) => {
    expect(() => parseSubIdFile(`# ok\nbob:1:1\n${line}\n`, '/etc/subuid')).toThrow(`/etc/subuid:3: malformed entry ${JSON.stringify(line)}`);
  });

  it('USER[:GROUP] by name or id; GROUP defaults to the user’s name', () => {
    expect(resolveRemapIdentity('alice', files)).toEqual({ user: 'alice', uid: 1000, group: 'alice', gid: 1000 });
    expect(resolveRemapIdentity('1000:50', files)).toEqual({ user: 'alice', uid: 1000, group: 'staff', gid: 50 });
    expect(() => resolveRemapIdentity('carol', files)).toThrow(`user "carol" not found in ${files.passwd}`);
    expect(() => resolveRemapIdentity('alice:nogroup', files)).toThrow(`group "nogroup" not found in ${files.group}`);
    expect(() => resolveRemapIdentity('a:b:c', files)).toThrow('is not "default" or USER[:GROUP]');
  });

  it('maps: ranges of the user by name and by id, sorted by start, container ids counted from 0 (moby createIDMap)', async () => {
    await writeFile(files.subuid, 'alice:300000:10\nbob:100000:65536\n1000:200000:65536\n');
    await writeFile(files.subgid, 'alice:500000:65536\n');
    const maps = remapIdMaps(resolveRemapIdentity('alice', files), files);
    expect(maps.uidMappings).toEqual([
      { containerID: 0, hostID: 200000, size: 65536 },
      { containerID: 65536, hostID: 300000, size: 10 },
    ]);
    expect(maps.gidMappings).toEqual([{ containerID: 0, hostID: 500000, size: 65536 }]);
  });

  it('a user without ranges, a missing file or a malformed line refuses, naming the file (and line)', async () => {
    const id = resolveRemapIdentity('alice', files);
    expect(() => remapIdMaps(id, files)).toThrow(`${files.subuid} does not exist`);
    await writeFile(files.subuid, 'bob:100000:65536\n');
    await writeFile(files.subgid, 'alice:100000:65536\n');
    expect(() => remapIdMaps(id, files)).toThrow(`no subordinate ids for alice in ${files.subuid}`);
    await writeFile(files.subuid, 'alice:100000:65536\nalice:x:1\n');
    expect(() => remapIdMaps(id, files)).toThrow(`${files.subuid}:2: malformed entry`);
  });

  it('the next free range starts at 100000, past every range it would overlap', () => {
    expect(nextRangeStart([])).toBe(100000);
    expect(nextRangeStart([{ owner: 'a', start: 100000, count: 65536 }])).toBe(165536);
    expect(nextRangeStart([{ owner: 'a', start: 1000, count: 10 }, { owner: 'b', start: 300000, count: 1 }])).toBe(100000);
    expect(nextRangeStart([{ owner: 'b', start: 150000, count: 10 }, { owner: 'a', start: 100000, count: 65536 }])).toBe(165536);
  });

  it('BERTH_USERNS_* pick other files', () => {
    expect(idFilesFromEnv({ BERTH_USERNS_SUBUID: '/x/subuid', BERTH_USERNS_GROUP: '/x/group', OTHER: 'y' })).toEqual({ subuid: '/x/subuid', group: '/x/group' });
  });
});

describe('--userns-remap=default', () => {
  /** A fake useradd that adds the user (and its group) to the test's files; records every command. */
  function fakeRun(calls: string[][]): RunCommand {
    return async (cmd, args) => {
      calls.push([cmd, ...args]);
      if (cmd === 'useradd') {
        const name = args[args.length - 1]!;
        await appendFile(files.passwd, `${name}:x:998:998::/nonexistent:/bin/false\n`);
        await appendFile(files.group, `${name}:x:998:\n`);
      }
    };
  }

  it('creates berthremap with useradd -r -s /bin/false and gives it the next free ranges (files written under their lock)', async () => {
    await writeFile(files.subuid, 'alice:100000:65536\n');
    const calls: string[][] = [];
    const id = await ensureDefaultRemapUser(files, fakeRun(calls));
    expect(calls).toEqual([['useradd', '-r', '-s', '/bin/false', DEFAULT_REMAP_USER]]);
    expect(id).toEqual({ user: DEFAULT_REMAP_USER, uid: 998, group: DEFAULT_REMAP_USER, gid: 998 });
    expect(await readFile(files.subuid, 'utf8')).toBe(`alice:100000:65536\n${DEFAULT_REMAP_USER}:165536:${SUBID_RANGE}\n`);
    expect(await readFile(files.subgid, 'utf8')).toBe(`${DEFAULT_REMAP_USER}:100000:${SUBID_RANGE}\n`);
    expect(remapIdMaps(id, files).uidMappings).toEqual([{ containerID: 0, hostID: 165536, size: SUBID_RANGE }]);

    // a second start finds everything: no command, no new line
    const again: string[][] = [];
    await ensureDefaultRemapUser(files, fakeRun(again));
    expect(again).toEqual([]);
    expect((await readFile(files.subuid, 'utf8')).split('\n').filter((l) => l.startsWith(DEFAULT_REMAP_USER))).toHaveLength(1);
  });

  it('waits for a held lock and refuses when it is never released', async () => {
    await writeFile(files.passwd, `${DEFAULT_REMAP_USER}:x:998:998::/:/bin/false\n`);
    await writeFile(files.group, `${DEFAULT_REMAP_USER}:x:998:\n`);
    await writeFile(`${files.subuid}.lock`, '');
    await expect(ensureDefaultRemapUser(files, fakeRun([]))).rejects.toThrow(`cannot lock ${files.subuid}.lock`);
  }, 20_000);
});
