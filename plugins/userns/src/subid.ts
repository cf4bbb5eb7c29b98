/**
 * The remap user's subordinate ID ranges: /etc/subuid and /etc/subgid (`name-or-id:start:count`
 * per line, several lines per user, `#` comments), /etc/passwd and /etc/group for the names
 * and ids, and the ID maps built from them as dockerd does (ranges sorted by start, container
 * IDs counted up from 0). A malformed line or a user without ranges is an error naming the file
 * and, for a bad line, its number. `--userns-remap=default` creates the `berthremap` user and
 * gives it a 65536-ID range (ensureDefaultRemapUser), as dockerd does for `dockremap`.
 */
import { execFile } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { OciIdMapping } from '@berth/core';

/** dockerd's name for `--userns-remap=default`; berth's user (dockerd's is `dockremap`). */
export const DEFAULT_REMAP_USER = 'berthremap';
/** The first subordinate ID dockerd hands out, and the size of one range. */
export const SUBID_FIRST = 100_000;
export const SUBID_RANGE = 65_536;

/** The files read (and, for `default`, written). Injectable: unit and e2e tests use their own. */
export interface IdFiles {
  passwd: string;
  group: string;
  subuid: string;
  subgid: string;
}

export const HOST_ID_FILES: IdFiles = Object.freeze({ passwd: '/etc/passwd', group: '/etc/group', subuid: '/etc/subuid', subgid: '/etc/subgid' });

/**
 * BERTH_USERNS_PASSWD / _GROUP / _SUBUID / _SUBGID: other files than /etc's (berthd reads
 * them, so that tests can give it a remap user without touching the host's /etc).
 */
export function idFilesFromEnv(env: Record<string, string | undefined>): Partial<IdFiles> {
  const out: Partial<IdFiles> = {};
  for (const k of ['passwd', 'group', 'subuid', 'subgid'] as const) {
    const v = env[`BERTH_USERNS_${k.toUpperCase()}`];
    if (v) out[k] = v;
  }
  return out;
}

export interface SubIdRange {
  /** The user or group as written: a name or a numeric id. */
  owner: string;
  start: number;
  count: number;
}

/** The remap user and group, as resolved. */
export interface RemapIdentity {
  user: string;
  uid: number;
  group: string;
  gid: number;
}

/** The ID maps of the remap user (container ID 0 = the first range's start). */
export interface IdMaps {
  uidMappings: OciIdMapping[];
  gidMappings: OciIdMapping[];
}

const MAX_ID = 2 ** 32 - 1;

function readText(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** Every range of a subuid/subgid file; a malformed line throws, naming the file and line. */
export function parseSubIdFile(text: string, file: string): SubIdRange[] {
  const out: SubIdRange[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const parts = line.split(':');
    const [owner, start, count] = parts;
    const n = (s: string | undefined): number => (s !== undefined && /^\d+$/.test(s) ? Number(s) : NaN);
    const st = n(start);
    const ct = n(count);
    if (parts.length !== 3 || !owner || !(st <= MAX_ID) || !(ct >= 1 && st + ct - 1 <= MAX_ID)) {
      throw new Error(`${file}:${i + 1}: malformed entry ${JSON.stringify(line)} (expected NAME-OR-ID:START:COUNT)`);
    }
    out.push({ owner, start: st, count: ct });
  });
  return out;
}

/** name:x:id:… lines of /etc/passwd or /etc/group (the first three fields). */
function parseIdDb(text: string): Array<{ name: string; id: number }> {
  const out: Array<{ name: string; id: number }> = [];
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f.length >= 3 && f[0] && /^\d+$/.test(f[2]!)) out.push({ name: f[0], id: Number(f[2]) });
  }
  return out;
}

/** A user or group by name or numeric id in a passwd/group file. */
function lookupId(file: string, what: 'user' | 'group', ref: string): { name: string; id: number } {
  const db = parseIdDb(readText(file) ?? '');
  const hit = /^\d+$/.test(ref) ? db.find((e) => e.id === Number(ref)) : db.find((e) => e.name === ref);
  if (!hit) throw new Error(`userns-remap: ${what} ${JSON.stringify(ref)} not found in ${file}`);
  return hit;
}

/**
 * `USER[:GROUP]` → the user and group (by name or id; GROUP defaults to USER's name, as dockerd).
 */
export function resolveRemapIdentity(remap: string, files: IdFiles): RemapIdentity {
  const [userRef, groupRef, ...rest] = remap.split(':');
  if (!userRef || rest.length > 0 || groupRef === '') throw new Error(`userns-remap: ${JSON.stringify(remap)} is not "default" or USER[:GROUP]`);
  const user = lookupId(files.passwd, 'user', userRef);
  const group = lookupId(files.group, 'group', groupRef ?? user.name);
  return { user: user.name, uid: user.id, group: group.name, gid: group.id };
}

/** The ranges of one owner (matched by name or by id), sorted by start. */
function rangesOf(file: string, name: string, id: number): SubIdRange[] {
  const text = readText(file);
  if (text === null) throw new Error(`userns-remap: ${file} does not exist (it must list subordinate ids for ${name})`);
  const mine = parseSubIdFile(text, file).filter((r) => r.owner === name || r.owner === String(id));
  if (mine.length === 0) throw new Error(`userns-remap: no subordinate ids for ${name} in ${file}`);
  return mine.sort((a, b) => a.start - b.start);
}

/** Sorted ranges → OCI mappings, container IDs counted up from 0 (moby idtools createIDMap). */
export function toMappings(ranges: readonly SubIdRange[]): OciIdMapping[] {
  let containerID = 0;
  return ranges.map((r) => {
    const m = { containerID, hostID: r.start, size: r.count };
    containerID += r.count;
    return m;
  });
}

/** The ID maps of a resolved remap identity, read from the subuid/subgid files. */
export function remapIdMaps(id: RemapIdentity, files: IdFiles): IdMaps {
  return {
    uidMappings: toMappings(rangesOf(files.subuid, id.user, id.uid)),
    gidMappings: toMappings(rangesOf(files.subgid, id.group, id.gid)),
  };
}

/** A command runner (useradd/usermod); injectable so unit tests run none. */
export type RunCommand = (cmd: string, args: string[]) => Promise<void>;

export const runCommand: RunCommand = async (cmd, args) => {
  await promisify(execFile)(cmd, args);
};

/** Whether `usermod` has --add-subuids (shadow ≥ 4.2). */
async function usermodAddsSubids(run: RunCommand): Promise<boolean> {
  try {
    await run('sh', ['-c', 'usermod --help 2>&1 | grep -q -- --add-subuids']);
    return true;
  } catch {
    return false;
  }
}

/** The first free start at or after SUBID_FIRST, past every existing range (dockerd's findNextRangeStart). */
export function nextRangeStart(ranges: readonly SubIdRange[]): number {
  let start = SUBID_FIRST;
  for (const r of [...ranges].sort((a, b) => a.start - b.start)) {
    if (r.start + r.count > start && r.start < start + SUBID_RANGE) start = r.start + r.count;
  }
  return start;
}

/** Run fn holding `<file>.lock` (shadow's lock-file convention), waiting up to ~5 s for it. */
async function withFileLock<T>(file: string, fn: () => T): Promise<T> {
  const lock = `${file}.lock`;
  for (let i = 0; ; i++) {
    try {
      closeSync(openSync(lock, 'wx', 0o600));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || i >= 100) throw new Error(`userns-remap: cannot lock ${lock}: ${(err as Error).message}`);
      await sleep(50);
    }
  }
  try {
    return fn();
  } finally {
    rmSync(lock, { force: true });
  }
}

/** Append `name:start:count` to a subid file unless the name already has a range there. */
async function addRangeByFile(file: string, name: string): Promise<void> {
  await withFileLock(file, () => {
    const text = readText(file) ?? '';
    const ranges = parseSubIdFile(text, file);
    if (ranges.some((r) => r.owner === name)) return;
    const sep = text === '' || text.endsWith('\n') ? '' : '\n';
    writeFileSync(file, `${text}${sep}${name}:${nextRangeStart(ranges)}:${SUBID_RANGE}\n`, { mode: 0o644 });
  });
}

/**
 * `--userns-remap=default`: make sure the `berthremap` user exists (useradd -r -s /bin/false)
 * and has subordinate uid and gid ranges (usermod --add-subuids/--add-subgids where usermod
 * has them, else appended to the files under their lock), then resolve it.
 */
export async function ensureDefaultRemapUser(files: IdFiles, run: RunCommand = runCommand): Promise<RemapIdentity> {
  const known = (): boolean => parseIdDb(readText(files.passwd) ?? '').some((e) => e.name === DEFAULT_REMAP_USER);
  if (!known()) {
    await run('useradd', ['-r', '-s', '/bin/false', DEFAULT_REMAP_USER]);
    if (!known()) throw new Error(`userns-remap: useradd did not create ${DEFAULT_REMAP_USER} in ${files.passwd}`);
  }
  const has = (file: string): boolean => parseSubIdFile(readText(file) ?? '', file).some((r) => r.owner === DEFAULT_REMAP_USER);
  const viaUsermod = files.subuid === HOST_ID_FILES.subuid && files.subgid === HOST_ID_FILES.subgid && (await usermodAddsSubids(run));
  for (const [file, flag] of [
    [files.subuid, '--add-subuids'],
    [files.subgid, '--add-subgids'],
  ] as const) {
    if (has(file)) continue;
    if (viaUsermod) {
      const start = nextRangeStart(parseSubIdFile(readText(file) ?? '', file));
      await run('usermod', [flag, `${start}-${start + SUBID_RANGE - 1}`, DEFAULT_REMAP_USER]);
    } else {
      await addRangeByFile(file, DEFAULT_REMAP_USER);
    }
  }
  return resolveRemapIdentity(DEFAULT_REMAP_USER, files);
}
