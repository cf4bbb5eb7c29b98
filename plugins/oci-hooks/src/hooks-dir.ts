/**
 * hooks.d directories in the format Podman and CRI-O read (containers/common pkg/hooks,
 * oci-hooks(5), schema 1.0.0): reading and checking the JSON files, the precedence of the
 * directories, and which hooks a container's spec matches.
 *
 *  - Files ending in `.json`; directories in increasing precedence: a file in a later directory
 *    masks the file of the same name in an earlier one. A directory that does not exist is
 *    skipped.
 *  - `{"version": "1.0.0", "hook": {path, args?, env?, timeout?}, "when": {always?, annotations?,
 *    commands?, hasBindMounts?}, "stages": [...]}`. Stages: prestart, createRuntime,
 *    createContainer, startContainer, poststart, poststop. The older 0.1.0 files (no `version`,
 *    or "0.1.0") are read as containers/common converts them: `hook` is the path, `arguments`
 *    follow it in args, `stage`/`cmd`/`annotation` are synonyms of `stages`/`cmds`/`annotations`
 *    (not both), and any one condition is enough (`hasbindmounts`, an `annotations` expression
 *    matching an annotation's value, a `cmds` expression).
 *  - `when`: every condition given must match (an `always: false` never matches, nor does a
 *    `when` with no condition). `annotations`: each key/value pair of regular expressions must
 *    match one annotation of the spec; `commands`: one expression must match `process.args[0]`;
 *    `hasBindMounts`: the container has bind mounts from the host. Expressions are unanchored, as
 *    Go's regexp.MatchString.
 *  - Matching hooks are added in the order of their file names, lower-cased; `prestart` goes to
 *    `createRuntime` as containers/common does (the same point of the runtime's create; the OCI
 *    spec deprecates prestart).
 * A file that cannot be used (not JSON, another version, a missing or mistyped field, a bad
 * expression, an unknown stage, a hook binary that does not exist) is reported with its path and
 * why, and skipped; the other files still apply.
 */
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { OciHook, OciHooks, OciSpec } from '@berth/core';

/** Where Podman and CRI-O read hooks, in increasing precedence (/etc masks /usr/share). */
export const DEFAULT_HOOKS_DIRS: readonly string[] = Object.freeze(['/usr/share/containers/oci/hooks.d', '/etc/containers/oci/hooks.d']);

export const HOOK_SCHEMA_VERSION = '1.0.0';
/** The older schema, still read (as Podman and CRI-O do). */
export const LEGACY_SCHEMA_VERSION = '0.1.0';

export const HOOK_STAGES = ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'] as const;
export type HookStage = (typeof HOOK_STAGES)[number];

/** One usable hook file. */
export interface HookDefinition {
  /** The file it came from. */
  file: string;
  /** Its name (what the order and the masking go by). */
  name: string;
  hook: OciHook;
  when: {
    /** 0.1.0 files: any one condition is enough (else all must hold). */
    anyOf?: boolean;
    always?: boolean;
    annotations?: Array<[key: RegExp, value: RegExp]>;
    commands?: RegExp[];
    hasBindMounts?: boolean;
  };
  stages: HookStage[];
}

/** A file that was skipped, and why. */
export interface HookFileProblem {
  file: string;
  reason: string;
}

/** What a container's hooks are matched against. */
export interface MatchInput {
  spec: OciSpec;
  /** The container has bind mounts from the host (docker run -v /host:/ctr, --mount type=bind). */
  hasBindMounts: boolean;
}

class Invalid extends Error {}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function stringList(v: unknown, what: string): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new Invalid(`${what} must be a list of strings`);
  return v as string[];
}

function regex(pattern: string, what: string): RegExp {
  try {
    return new RegExp(pattern);
  } catch (err) {
    throw new Invalid(`invalid ${what} ${JSON.stringify(pattern)}: ${(err as Error).message}`);
  }
}

function optionalBool(v: unknown, what: string): boolean | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw new Invalid(`${what} must be true or false`);
  return v;
}

/** Parse and check one hook file's content (throws Invalid with the reason). */
export function parseHookFile(text: string, file: string, name: string): HookDefinition {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new Invalid(`not JSON: ${(err as Error).message}`);
  }
  if (!isObject(doc)) throw new Invalid('not a JSON object');
  const version = doc['version'] ?? '';
  if (version === '' || version === LEGACY_SCHEMA_VERSION) return parseLegacy(doc, file, name);
  if (version !== HOOK_SCHEMA_VERSION) throw new Invalid(`unrecognized hook version ${JSON.stringify(version)} (berth reads ${HOOK_SCHEMA_VERSION} and ${LEGACY_SCHEMA_VERSION})`);
  const h = doc['hook'];
  if (!isObject(h)) throw new Invalid('missing required property: hook');
  if (typeof h['path'] !== 'string' || h['path'] === '') throw new Invalid('missing required property: hook.path');
  const hook: OciHook = { path: h['path'] };
  const args = stringList(h['args'], 'hook.args');
  if (args) hook.args = args;
  const env = stringList(h['env'], 'hook.env');
  if (env) hook.env = env;
  if (h['timeout'] !== undefined && h['timeout'] !== null) {
    if (typeof h['timeout'] !== 'number' || !Number.isInteger(h['timeout']) || h['timeout'] <= 0) throw new Invalid('hook.timeout must be a positive whole number of seconds');
    hook.timeout = h['timeout'];
  }
  const w = doc['when'];
  if (!isObject(w)) throw new Invalid('missing required property: when');
  const when: HookDefinition['when'] = {};
  const always = optionalBool(w['always'], 'when.always');
  if (always !== undefined) when.always = always;
  const binds = optionalBool(w['hasBindMounts'], 'when.hasBindMounts');
  if (binds !== undefined) when.hasBindMounts = binds;
  if (w['annotations'] !== undefined && w['annotations'] !== null) {
    const a = w['annotations'];
    if (!isObject(a) || Object.values(a).some((x) => typeof x !== 'string')) throw new Invalid('when.annotations must map regular expressions to regular expressions');
    when.annotations = Object.entries(a as Record<string, string>).map(([k, v]) => [regex(k, 'annotation key'), regex(v, 'annotation value')]);
  }
  const commands = stringList(w['commands'], 'when.commands');
  if (commands) when.commands = commands.map((c) => regex(c, 'command'));
  return { file, name, hook, when, stages: checkStages(doc['stages']) };
}

function checkStages(stages: unknown): HookStage[] {
  if (stages === undefined || stages === null) throw new Invalid('missing required property: stages');
  const list = stringList(stages, 'stages')!;
  for (const s of list) if (!(HOOK_STAGES as readonly string[]).includes(s)) throw new Invalid(`unknown stage ${JSON.stringify(s)} (one of ${HOOK_STAGES.join(', ')})`);
  return list as HookStage[];
}

/** A field of a 0.1.0 file that has a synonym (`stages`/`stage`, …): one of them, not both. */
function synonym(doc: Record<string, unknown>, name: string, alt: string): unknown {
  const a = doc[name] ?? undefined;
  const b = doc[alt] ?? undefined;
  if (a !== undefined && b !== undefined) throw new Invalid(`cannot set both '${alt}' and '${name}'`);
  return a ?? b;
}

/** A 0.1.0 file, converted as containers/common does. */
function parseLegacy(doc: Record<string, unknown>, file: string, name: string): HookDefinition {
  if (typeof doc['hook'] !== 'string' || doc['hook'] === '') throw new Invalid('missing required property: hook');
  const hook: OciHook = { path: doc['hook'] };
  const args = stringList(doc['arguments'], 'arguments');
  if (args) hook.args = [doc['hook'], ...args];
  const stages = checkStages(synonym(doc, 'stages', 'stage'));
  const when: HookDefinition['when'] = { anyOf: true };
  const cmds = stringList(synonym(doc, 'cmds', 'cmd'), 'cmds');
  if (cmds) when.commands = cmds.map((c) => regex(c, 'command'));
  const annotations = stringList(synonym(doc, 'annotations', 'annotation'), 'annotations');
  if (annotations) when.annotations = [[/.*/, regex(annotations.join('|'), 'annotation value')]];
  const binds = optionalBool(doc['hasbindmounts'], 'hasbindmounts');
  if (binds !== undefined) when.hasBindMounts = binds;
  return { file, name, hook, when, stages };
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Read the hook files of `dirs` (increasing precedence). Returns the usable hooks in injection
 * order and the files that were skipped.
 */
export async function readHooksDirs(dirs: readonly string[]): Promise<{ hooks: HookDefinition[]; problems: HookFileProblem[] }> {
  const byName = new Map<string, HookDefinition | HookFileProblem>();
  for (const dir of dirs) {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      byName.set(`\0${dir}`, { file: dir, reason: `cannot read the directory: ${(err as Error).message}` });
      continue;
    }
    for (const name of names) {
      if (!name.endsWith('.json')) continue;
      const file = join(dir, name);
      try {
        let text: string;
        try {
          text = await readFile(file, 'utf8');
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // removed meanwhile
          if ((err as NodeJS.ErrnoException).code === 'EISDIR') throw new Invalid('a directory, not a file');
          throw new Invalid(`cannot read it: ${(err as Error).message}`);
        }
        const def = parseHookFile(text, file, name);
        if (!(await exists(def.hook.path))) throw new Invalid(`hook.path ${def.hook.path} does not exist`);
        byName.set(name, def);
      } catch (err) {
        if (!(err instanceof Invalid)) throw err;
        byName.set(name, { file, reason: err.message });
      }
    }
  }
  const hooks: HookDefinition[] = [];
  const problems: HookFileProblem[] = [];
  for (const [name, v] of byName) {
    if ('reason' in v) problems.push(v);
    else hooks.push({ ...v, name });
  }
  // containers/common: file names lower-cased, compared by code point.
  const key = (s: string) => s.toLowerCase();
  hooks.sort((a, b) => (key(a.name) < key(b.name) ? -1 : key(a.name) > key(b.name) ? 1 : 0));
  return { hooks, problems };
}

/** Whether a hook's `when` matches: every condition it gives must hold (and it must give one). */
export function hookMatches(def: HookDefinition, input: MatchInput): boolean {
  const { when } = def;
  if (when.anyOf) return anyConditionMatches(def, input);
  let matched = 0;
  if (when.always !== undefined) {
    if (!when.always) return false;
    matched++;
  }
  if (when.hasBindMounts !== undefined) {
    if (!(when.hasBindMounts && input.hasBindMounts)) return false;
    matched++;
  }
  const annotations = Object.entries(input.spec.annotations ?? {});
  for (const [k, v] of when.annotations ?? []) {
    if (!annotations.some(([ak, av]) => k.test(ak) && v.test(av))) return false;
    matched++;
  }
  const args = input.spec.process?.args;
  if (when.commands?.length && input.spec.process) {
    const cmd = args?.[0];
    if (cmd === undefined || !when.commands.some((re) => re.test(cmd))) return false;
    matched++;
  }
  return matched > 0;
}

/** A 0.1.0 hook: one condition that holds is enough; a `cmds` that matches nothing refuses it (containers/common). */
function anyConditionMatches({ when }: HookDefinition, input: MatchInput): boolean {
  if (when.hasBindMounts && input.hasBindMounts) return true;
  const annotations = Object.entries(input.spec.annotations ?? {});
  if ((when.annotations ?? []).some(([k, v]) => annotations.some(([ak, av]) => k.test(ak) && v.test(av)))) return true;
  const cmd = input.spec.process?.args?.[0];
  return !!when.commands?.length && cmd !== undefined && when.commands.some((re) => re.test(cmd));
}

/** The spec with the matching hooks appended to their stages (a new object; `spec` is not changed). */
export function withMatchingHooks(input: MatchInput, hooks: readonly HookDefinition[]): { spec: OciSpec; added: HookDefinition[] } {
  const added = hooks.filter((d) => hookMatches(d, input));
  if (added.length === 0) return { spec: input.spec, added };
  const next: OciHooks = { ...(input.spec.hooks ?? {}) };
  for (const d of added) {
    for (const stage of d.stages) {
      const target = stage === 'prestart' ? 'createRuntime' : stage;
      next[target] = [...(next[target] ?? []), structuredClone(d.hook)];
    }
  }
  return { spec: { ...input.spec, hooks: next }, added };
}
