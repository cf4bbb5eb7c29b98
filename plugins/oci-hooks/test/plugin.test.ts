/**
 * The oci-hooks plugin in an engine on the fake runtime (no root): the spec of a container that
 * matches gets the hooks, another's does not; hooks.d is read at each start (a file added later
 * applies to the next start); a bad file is warned about once, naming it; the config is checked.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { errorMessage, type HostConfig } from '@berth/core';
import { createTestEngine, ociSchemaErrors, type TestEngine } from '@berth/testing';
import { ociHooksPlugin } from '../src/index.js';

let t: TestEngine | undefined;
let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'berth-oci-hooks-'));
});
afterEach(async () => {
  await t?.dispose();
  t = undefined;
  rmSync(dir, { recursive: true, force: true });
});

const BIN = process.execPath;

function writeHook(name: string, body: unknown): void {
  writeFileSync(join(dir, name), typeof body === 'string' ? body : JSON.stringify(body));
}

async function specOf(te: TestEngine, opts: { cmd?: string[]; hc?: HostConfig } = {}) {
  const id = await te.createContainer({ Config: { Cmd: opts.cmd ?? ['sleep', '1'] }, HostConfig: opts.hc ?? {} });
  await te.engine.containers.start(id);
  return te.fake.containers.get(id)!.spec!;
}

describe('oci-hooks plugin', () => {
  it('adds a hook to the spec of the containers it matches only (annotation, command)', async () => {
    writeHook('10-annotated.json', { version: '1.0.0', hook: { path: BIN, args: ['hook', 'annotated'] }, when: { annotations: { '^io\\.berth\\.test\\.hook$': '^yes$' } }, stages: ['poststart'] });
    writeHook('20-sleeper.json', { version: '1.0.0', hook: { path: BIN, args: ['hook', 'sleeper'], timeout: 3 }, when: { commands: ['^sleep$'] }, stages: ['prestart', 'poststop'] });
    t = await createTestEngine({ plugins: [ociHooksPlugin({ config: { dirs: [dir] } })] });

    const both = await specOf(t, { hc: { Annotations: { 'io.berth.test.hook': 'yes' } } });
    expect(both.hooks).toEqual({
      poststart: [{ path: BIN, args: ['hook', 'annotated'] }],
      createRuntime: [{ path: BIN, args: ['hook', 'sleeper'], timeout: 3 }],
      poststop: [{ path: BIN, args: ['hook', 'sleeper'], timeout: 3 }],
    });
    expect(ociSchemaErrors('oci-runtime-spec/config-schema.json', both)).toBe('');

    const neither = await specOf(t, { cmd: ['sh', '-c', 'sleep 1'], hc: { Annotations: { 'io.berth.test.hook': 'no' } } });
    expect(neither.hooks).toBeUndefined();
    expect(t.logger.entries.filter((e) => e.level === 'warn')).toEqual([]);
  });

  it('reads hooks.d at each start: a file added later applies to the next start, a removed one no more', async () => {
    t = await createTestEngine({ plugins: [ociHooksPlugin({ config: { dirs: [dir] } })] });
    expect((await specOf(t)).hooks).toBeUndefined();
    writeHook('h.json', { version: '1.0.0', hook: { path: BIN }, when: { always: true }, stages: ['createContainer'] });
    expect((await specOf(t)).hooks).toEqual({ createContainer: [{ path: BIN }] });
    rmSync(join(dir, 'h.json'));
    expect((await specOf(t)).hooks).toBeUndefined();
  });

  it('a bad hook file is skipped with one warning naming it; the good ones still apply', async () => {
    writeHook('bad.json', '{"version": "1.0.0", "hook": ');
    writeHook('good.json', { version: '1.0.0', hook: { path: BIN }, when: { always: true }, stages: ['poststart'] });
    t = await createTestEngine({ plugins: [ociHooksPlugin({ config: { dirs: [dir] } })] });
    expect((await specOf(t)).hooks).toEqual({ poststart: [{ path: BIN }] });
    expect((await specOf(t)).hooks).toEqual({ poststart: [{ path: BIN }] });
    const warnings = t.logger.entries.filter((e) => e.level === 'warn');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.msg).toMatch(new RegExp(`^OCI hook file ${join(dir, 'bad.json').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} skipped: not JSON: `));
  });

  it('refuses a config whose dirs are not absolute paths, naming the key', async () => {
    const err = await createTestEngine({ plugins: [ociHooksPlugin({ config: { dirs: ['relative/hooks.d'] } })] }).catch((e: unknown) => e);
    expect(errorMessage(err)).toContain('plugin oci-hooks failed in hook validateConfig: config key "dirs": must be a list of absolute directory paths');
  });
});
