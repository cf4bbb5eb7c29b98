/**
 * hooks.d reading and matching (hooks-dir.ts) against the oci-hooks(5) rules Podman and CRI-O
 * follow: every `when` condition given must hold, annotation key/value expressions, commands on
 * process.args[0], hasBindMounts; 0.1.0 files converted as containers/common does (any one
 * condition); precedence of directories by file name; injection order by lower-cased file name;
 * prestart into createRuntime; every kind of bad file skipped and named.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { OciSpec } from '@berth/core';
import { hookMatches, parseHookFile, readHooksDirs, withMatchingHooks, type HookDefinition } from '../src/index.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'berth-oci-hooks-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A hook binary that exists. */
const BIN = process.execPath;

function def(when: Record<string, unknown>, stages: string[] = ['poststart']): HookDefinition {
  return parseHookFile(JSON.stringify({ version: '1.0.0', hook: { path: BIN }, when, stages }), '/x/h.json', 'h.json');
}

function spec(args: string[], annotations?: Record<string, string>): OciSpec {
  return { ociVersion: '1.2.0', process: { args, cwd: '/', user: { uid: 0, gid: 0 } }, ...(annotations ? { annotations } : {}) } as OciSpec;
}

describe('when', () => {
  it('always: true matches every container, always: false none; an empty when matches nothing', () => {
    expect(hookMatches(def({ always: true }), { spec: spec(['sh']), hasBindMounts: false })).toBe(true);
    expect(hookMatches(def({ always: false }), { spec: spec(['sh']), hasBindMounts: false })).toBe(false);
    expect(hookMatches(def({}), { spec: spec(['sh']), hasBindMounts: false })).toBe(false);
  });

  it('annotations: each key/value pair of expressions must match one annotation (unanchored)', () => {
    const d = def({ annotations: { '^com\\.example\\.department$': '.*fluid-dynamics$', 'team': 'a' } });
    expect(hookMatches(d, { spec: spec(['sh'], { 'com.example.department': 'r&d fluid-dynamics', team: 'ab' }), hasBindMounts: false })).toBe(true);
    expect(hookMatches(d, { spec: spec(['sh'], { 'com.example.department': 'fluid-dynamics' }), hasBindMounts: false })).toBe(false);
    expect(hookMatches(d, { spec: spec(['sh'], { 'xcom.example.department': 'fluid-dynamics', team: 'a' }), hasBindMounts: false })).toBe(false);
    expect(hookMatches(d, { spec: spec(['sh']), hasBindMounts: false })).toBe(false);
  });

  it('commands: one expression must match process.args[0]', () => {
    const d = def({ commands: ['.*/init$', '^sleep$'] });
    expect(hookMatches(d, { spec: spec(['/sbin/init']), hasBindMounts: false })).toBe(true);
    expect(hookMatches(d, { spec: spec(['sleep', '1']), hasBindMounts: false })).toBe(true);
    expect(hookMatches(d, { spec: spec(['/bin/sh', 'sleep']), hasBindMounts: false })).toBe(false);
  });

  it('hasBindMounts: true matches only a container with bind mounts', () => {
    const d = def({ hasBindMounts: true });
    expect(hookMatches(d, { spec: spec(['sh']), hasBindMounts: true })).toBe(true);
    expect(hookMatches(d, { spec: spec(['sh']), hasBindMounts: false })).toBe(false);
  });

  it('all conditions given must hold (AND), as containers/common matches them', () => {
    const d = def({ always: true, commands: ['^sh$'], annotations: { run: 'hooks' } });
    expect(hookMatches(d, { spec: spec(['sh'], { run: 'hooks' }), hasBindMounts: false })).toBe(true);
    expect(hookMatches(d, { spec: spec(['sh']), hasBindMounts: false })).toBe(false);
    expect(hookMatches(d, { spec: spec(['ls'], { run: 'hooks' }), hasBindMounts: false })).toBe(false);
    expect(hookMatches(def({ always: false, commands: ['^sh$'] }), { spec: spec(['sh']), hasBindMounts: false })).toBe(false);
  });
});

describe('0.1.0 files', () => {
  const legacy = (doc: Record<string, unknown>) => parseHookFile(JSON.stringify(doc), '/x/old.json', 'old.json');

  it('are converted as containers/common does: hook is the path, arguments follow it, synonyms', () => {
    const d = legacy({ hook: BIN, arguments: ['--debug'], stage: ['prestart'], cmd: ['^sh$'] });
    expect(d.hook).toEqual({ path: BIN, args: [BIN, '--debug'] });
    expect(d.stages).toEqual(['prestart']);
    expect(legacy({ version: '0.1.0', hook: BIN, stages: ['poststop'] }).hook).toEqual({ path: BIN });
  });

  it('any one condition is enough: hasbindmounts, an annotation value, a command', () => {
    const d = legacy({ hook: BIN, stages: ['prestart'], hasbindmounts: true, annotations: ['fluid-dynamics', '^gpu$'], cmds: ['^/sbin/init$'] });
    expect(hookMatches(d, { spec: spec(['sh']), hasBindMounts: true })).toBe(true);
    expect(hookMatches(d, { spec: spec(['sh'], { any: 'gpu' }), hasBindMounts: false })).toBe(true);
    expect(hookMatches(d, { spec: spec(['sh'], { dept: 'r&d fluid-dynamics' }), hasBindMounts: false })).toBe(true);
    expect(hookMatches(d, { spec: spec(['/sbin/init']), hasBindMounts: false })).toBe(true);
    expect(hookMatches(d, { spec: spec(['sh'], { any: 'cpu' }), hasBindMounts: false })).toBe(false);
    expect(hookMatches(legacy({ hook: BIN, stages: ['prestart'] }), { spec: spec(['sh']), hasBindMounts: true })).toBe(false);
  });
});

describe('the spec', () => {
  it('matching hooks are appended to their stages, prestart into createRuntime; the input spec is untouched', () => {
    const a = def({ always: true }, ['prestart', 'poststop']);
    const b = { ...def({ commands: ['^nomatch$'] }, ['poststart']), name: 'b.json' };
    const own = { path: '/usr/bin/true' };
    const input = { ...spec(['sh']), hooks: { createRuntime: [own] } };
    const { spec: out, added } = withMatchingHooks({ spec: input, hasBindMounts: false }, [a, b]);
    expect(added).toEqual([a]);
    expect(out.hooks).toEqual({ createRuntime: [own, { path: BIN }], poststop: [{ path: BIN }] });
    expect(input.hooks).toEqual({ createRuntime: [own] });
    expect(withMatchingHooks({ spec: input, hasBindMounts: false }, [b]).spec).toBe(input);
  });
});

describe('hooks.d directories', () => {
  function write(d: string, name: string, body: unknown): void {
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, name), typeof body === 'string' ? body : JSON.stringify(body));
  }
  const ok = (path = BIN, extra: Record<string, unknown> = {}) => ({ version: '1.0.0', hook: { path, args: ['hook', 'x'], env: ['A=1'], timeout: 5 }, when: { always: true }, stages: ['poststart'], ...extra });

  it('a later directory masks the same file name; order is by lower-cased name; missing dirs are skipped; non-.json files ignored', async () => {
    const low = join(dir, 'usr');
    const high = join(dir, 'etc');
    write(low, '01-same.json', ok(BIN, { stages: ['poststop'] }));
    write(high, '01-same.json', ok());
    write(low, '02-Upper.json', ok());
    write(low, '02-lower.json', ok());
    write(low, 'README', 'not a hook');
    const { hooks, problems } = await readHooksDirs([low, join(dir, 'missing'), high]);
    expect(problems).toEqual([]);
    expect(hooks.map((h) => [h.name, h.file, h.stages])).toEqual([
      ['01-same.json', join(high, '01-same.json'), ['poststart']],
      ['02-lower.json', join(low, '02-lower.json'), ['poststart']],
      ['02-Upper.json', join(low, '02-Upper.json'), ['poststart']],
    ]);
    expect(hooks[0]!.hook).toEqual({ path: BIN, args: ['hook', 'x'], env: ['A=1'], timeout: 5 });
  });

  it('every bad file is skipped and named with why; the good ones still apply', async () => {
    write(dir, 'a-not-json.json', '{"version": ');
    write(dir, 'b-version.json', ok(BIN, { version: '2.0.0' }));
    write(dir, 'b2-both.json', { hook: BIN, stage: ['prestart'], stages: ['prestart'] });
    write(dir, 'c-no-path.json', { version: '1.0.0', hook: {}, when: { always: true }, stages: ['poststart'] });
    write(dir, 'd-missing-bin.json', ok('/nonexistent/hook-binary'));
    write(dir, 'e-stage.json', ok(BIN, { stages: ['prestop'] }));
    write(dir, 'f-regex.json', ok(BIN, { when: { commands: ['(unclosed'] } }));
    write(dir, 'g-no-stages.json', { version: '1.0.0', hook: { path: BIN }, when: { always: true } });
    write(dir, 'h-timeout.json', ok(BIN, { hook: { path: BIN, timeout: -1 } }));
    write(dir, 'i-args.json', ok(BIN, { hook: { path: BIN, args: 'x' } }));
    write(dir, 'j-no-when.json', { version: '1.0.0', hook: { path: BIN }, stages: ['poststart'] });
    write(dir, 'z-good.json', ok());
    const { hooks, problems } = await readHooksDirs([dir]);
    expect(hooks.map((h) => h.name)).toEqual(['z-good.json']);
    const why = Object.fromEntries(problems.map((p) => [p.file.slice(dir.length + 1), p.reason]));
    expect(why).toEqual({
      'a-not-json.json': expect.stringMatching(/^not JSON: /),
      'b-version.json': 'unrecognized hook version "2.0.0" (berth reads 1.0.0 and 0.1.0)',
      'b2-both.json': "cannot set both 'stage' and 'stages'",
      'c-no-path.json': 'missing required property: hook.path',
      'd-missing-bin.json': 'hook.path /nonexistent/hook-binary does not exist',
      'e-stage.json': 'unknown stage "prestop" (one of prestart, createRuntime, createContainer, startContainer, poststart, poststop)',
      'f-regex.json': expect.stringMatching(/^invalid command "\(unclosed": /),
      'g-no-stages.json': 'missing required property: stages',
      'h-timeout.json': 'hook.timeout must be a positive whole number of seconds',
      'i-args.json': 'hook.args must be a list of strings',
      'j-no-when.json': 'missing required property: when',
    });
  });

  it('a bad file in a later directory masks a good one of the same name (and is reported)', async () => {
    write(join(dir, 'a'), 'h.json', ok());
    write(join(dir, 'b'), 'h.json', '[]');
    const { hooks, problems } = await readHooksDirs([join(dir, 'a'), join(dir, 'b')]);
    expect(hooks).toEqual([]);
    expect(problems).toEqual([{ file: join(dir, 'b', 'h.json'), reason: 'not a JSON object' }]);
  });
});
