/**
 * COPY/ADD `--chown=user[:group]`, as dockerd's classic builder reads it: each part a number or
 * a name; names are looked up in the image's own /etc/passwd and /etc/group (resolved inside the
 * image's root, never outside it); a user without a group names the group too (`--chown=app`
 * is app:app). Errors carry dockerd's words.
 */
import { InvalidParameterError } from '@berth/core';
import { resolveInside } from './fs-inside.js';
import type { SourceTree } from './tree.js';

export interface ChownSpec {
  user: string;
  group: string;
}

const NUMERIC = /^\d+$/;

/** The two parts of a `--chown` value (null without one). */
export function parseChownSpec(v: string | null | undefined): ChownSpec | null {
  if (!v) return null;
  const parts = v.split(':');
  if (parts.length > 2 || parts.some((p) => p === '')) throw new InvalidParameterError(`invalid chown string format: ${v}`);
  return { user: parts[0]!, group: parts[1] ?? parts[0]! };
}

/** Whether resolving the spec needs the image's files (a part is a name). */
export function chownNeedsImage(spec: ChownSpec | null): boolean {
  return spec !== null && !(NUMERIC.test(spec.user) && NUMERIC.test(spec.group));
}

async function readInside(tree: SourceTree | null, rel: string): Promise<string> {
  if (!tree) return '';
  const p = await resolveInside(tree, rel);
  const st = await tree.lstat(p);
  if (st?.type !== 'file') return '';
  const chunks: Buffer[] = [];
  for await (const c of tree.open(p)) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The ID of `name` in a passwd/group file's text (field 3), or undefined. */
function lookup(text: string, name: string): number | undefined {
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f.length >= 3 && NUMERIC.test(f[2] ?? '')) return Number(f[2]);
  }
  return undefined;
}

/** uid/gid of a spec; `image` is the image's root (null for scratch) when a part is a name. */
export async function resolveChown(spec: ChownSpec | null, image: SourceTree | null): Promise<{ uid: number; gid: number } | null> {
  if (!spec) return null;
  const fail = (what: string): never => {
    throw new InvalidParameterError(`unable to convert uid/gid chown string to host mapping: ${what}`);
  };
  let uid: number;
  if (NUMERIC.test(spec.user)) uid = Number(spec.user);
  else uid = lookup(await readInside(image, 'etc/passwd'), spec.user) ?? fail(`can't find uid for user ${spec.user}: no such user: ${spec.user}`);
  let gid: number;
  if (NUMERIC.test(spec.group)) gid = Number(spec.group);
  else gid = lookup(await readInside(image, 'etc/group'), spec.group) ?? fail(`can't find gid for group ${spec.group}: no such group: ${spec.group}`);
  return { uid, gid };
}
