import { readFile } from 'node:fs/promises';
import { InvalidParameterError } from '../errors.js';
import type { OciSpec, OciUser } from '../oci.js';
import type { SpecOpt } from './opts.js';
import { resolveInRoot } from './rootfs.js';

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

const MAX_ID = 2147483647;

function parseId(s: string): number | undefined {
  if (!/^[0-9]+$/.test(s)) return undefined;
  const n = Number(s);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Parses /etc/passwd content; malformed lines are skipped (like libcontainer/user). */
export function parsePasswd(content: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const raw of content.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const f = line.split(':');
    if (f.length < 4) continue;
    const uid = parseId(f[2]);
    const gid = parseId(f[3]);
    if (uid === undefined || gid === undefined) continue;
    out.push({ name: f[0], uid, gid, home: f[5] ?? '', shell: f[6] ?? '' });
  }
  return out;
}

/** Parses /etc/group content; malformed lines are skipped. */
export function parseGroup(content: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const raw of content.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const f = line.split(':');
    if (f.length < 3) continue;
    const gid = parseId(f[2]);
    if (gid === undefined) continue;
    out.push({ name: f[0], gid, members: (f[3] ?? '').split(',').map((m) => m.trim()).filter((m) => m !== '') });
  }
  return out;
}

function checkRange(id: number): number {
  if (id < 0 || id > MAX_ID) throw new InvalidParameterError(`uids and gids must be in range 0-${MAX_ID}`);
  return id;
}

/**
 * Resolves a Docker `User` ("", "name", "uid", "name:group", "uid:gid", …) against the
 * container's passwd and group entries, like libcontainer's GetExecUser as dockerd uses it:
 * - a name must exist in passwd ("unable to find user x: no matching entries in passwd file");
 *   a numeric uid need not (its gid is then 0);
 * - without an explicit group, the user's primary gid and the groups listing the user as a
 *   member become additional gids; with one, only that group;
 * - GroupAdd entries (names or numbers) are appended ("Unable to find group x: …").
 */
export function resolveUserFromEntries(
  userSpec: string | undefined,
  passwd: readonly PasswdEntry[],
  groups: readonly GroupEntry[],
  groupAdd: readonly string[] = [],
): OciUser {
  const spec = (userSpec ?? '').trim();
  const [userArg, groupArg] = spec.includes(':') ? [spec.slice(0, spec.indexOf(':')), spec.slice(spec.indexOf(':') + 1)] : [spec, undefined];

  let uid = 0;
  let gid = 0;
  let name = 'root';
  if (userArg !== '') {
    const numeric = parseId(userArg);
    const entry = passwd.find((p) => p.name === userArg) ?? (numeric !== undefined ? passwd.find((p) => p.uid === numeric) : undefined);
    if (entry) {
      uid = entry.uid;
      gid = entry.gid;
      name = entry.name;
    } else if (numeric !== undefined) {
      uid = checkRange(numeric);
      name = '';
    } else {
      throw new InvalidParameterError(`unable to find user ${userArg}: no matching entries in passwd file`);
    }
  } else {
    const rootEntry = passwd.find((p) => p.uid === 0);
    if (rootEntry) name = rootEntry.name;
  }

  const sgids: number[] = [];
  if (groupArg !== undefined && groupArg !== '') {
    const numeric = parseId(groupArg);
    const entry = groups.find((g) => g.name === groupArg) ?? (numeric !== undefined ? groups.find((g) => g.gid === numeric) : undefined);
    if (entry) gid = entry.gid;
    else if (numeric !== undefined) gid = checkRange(numeric);
    else throw new InvalidParameterError(`unable to find group ${groupArg}: no matching entries in group file`);
  } else if (name !== '') {
    for (const g of groups) if (g.members.includes(name)) sgids.push(g.gid);
  }

  const added: number[] = [];
  for (const ga of groupAdd) {
    const numeric = parseId(ga);
    const entry = groups.find((g) => g.name === ga);
    if (entry) added.push(entry.gid);
    else if (numeric !== undefined) added.push(checkRange(numeric));
    else throw new InvalidParameterError(`Unable to find group ${ga}: no matching entries in group file`);
  }

  return { uid, gid, additionalGids: [gid, ...sgids, ...added] };
}

async function readRootfsFile(rootfs: string, file: string): Promise<string> {
  try {
    return await readFile(await resolveInRoot(rootfs, file), 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return '';
    throw err;
  }
}

/**
 * Resolves "user[:group]" (plus GroupAdd) against the rootfs's /etc/passwd and /etc/group
 * (symlinks resolved inside the rootfs; a missing file counts as empty).
 */
export async function resolveUser(rootfs: string, userSpec: string | undefined, groupAdd: readonly string[] = []): Promise<OciUser> {
  const [passwd, group] = await Promise.all([readRootfsFile(rootfs, '/etc/passwd'), readRootfsFile(rootfs, '/etc/group')]);
  return resolveUserFromEntries(userSpec, parsePasswd(passwd), parseGroup(group), groupAdd);
}

export function withUser(user: OciUser): SpecOpt {
  return (spec: OciSpec) => {
    const copy: OciUser = { ...user };
    if (user.additionalGids) copy.additionalGids = [...user.additionalGids];
    return { ...spec, process: { ...(spec.process ?? { cwd: '/' }), user: copy } };
  };
}
