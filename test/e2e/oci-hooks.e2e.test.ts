/**
 * The oci-hooks plugin with real runc and the docker CLI (issue 14): a hooks.d directory of
 * Podman-format hook files, given to berthd through daemon.json's plugins section, and poststart
 * hooks that write a file naming the container. A hook whose `when.annotations` matches runs for
 * the container started with that annotation only; one whose `when.commands` matches runs for
 * the container whose command is `sleep` only; a container matching neither runs none. A bad
 * hook file is named in berthd's log and the others still run. A container with poststart hooks
 * is started with `runc start` (runc's main branch runs poststart hooks there), one without with
 * the backend's fast start.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, berthdSkipReason, removeTestImageTarball, startBerthd, type Berthd } from './helpers/berthd.js';

const skip = berthdSkipReason();

/** A hook program: reads the container's state on stdin, writes it to <out>/<tag>-<container id>. */
const HOOK_SCRIPT = `#!/bin/sh
state=$(cat)
id=$(printf '%s' "$state" | sed -n 's/.*"id" *: *"\\([0-9a-f]*\\)".*/\\1/p')
printf '%s' "$state" > "$1/$2-$id"
`;

describe.skipIf(skip !== null)(`OCI hooks (hooks.d) with runc${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let d: Berthd | undefined;
  let tmp: string | undefined;
  afterAll(async () => {
    await d?.cleanup();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    removeTestImageTarball();
  });
  /** Under the block's temp dir (`dir`): an empty hooks dir, an empty dir the hook writes to, the hook script (HOOK_SCRIPT); `name` tells a test's apart. */
  const hookFiles = (name: string) => {
    const dir = (tmp ??= fs.mkdtempSync(path.join(os.tmpdir(), 'berth-oci-hooks-e2e-')));
    const hooksDir = path.join(dir, `${name}.d`);
    const out = path.join(dir, `${name}-out`);
    fs.mkdirSync(hooksDir);
    fs.mkdirSync(out);
    const script = path.join(dir, `${name}.sh`);
    fs.writeFileSync(script, HOOK_SCRIPT, { mode: 0o755 });
    return { dir, hooksDir, out, script };
  };

  it('a poststart hook runs for the containers its annotation or command matches, not for others', async () => {
    const { dir, hooksDir, out, script } = hookFiles('hooks');
    const hookFile = (tag: string, when: unknown) => ({ version: '1.0.0', hook: { path: script, args: [script, out, tag], timeout: 10 }, when, stages: ['poststart'] });
    fs.writeFileSync(path.join(hooksDir, '10-annotated.json'), JSON.stringify(hookFile('annotated', { annotations: { '^io\\.berth\\.e2e\\.hook$': '^on$' } })));
    fs.writeFileSync(path.join(hooksDir, '20-sleeper.json'), JSON.stringify(hookFile('sleeper', { commands: ['^sleep$'] })));
    fs.writeFileSync(path.join(hooksDir, '30-broken.json'), '{"version": "1.0.0", "hook": {"path": ');
    const daemonJson = path.join(dir, 'daemon.json');
    fs.writeFileSync(daemonJson, JSON.stringify({ plugins: { config: { 'oci-hooks': { dirs: [hooksDir] } } } }));

    d = await startBerthd({ args: ['--config-file', daemonJson] });
    await d.loadTestImage();
    const run = async (args: string[]): Promise<string> => {
      const r = await d!.docker(['run', '-d', ...args]);
      expect(r.code, r.stderr).toBe(0);
      return r.stdout.trim();
    };
    const annotated = await run(['--annotation', 'io.berth.e2e.hook=on', TEST_IMAGE, 'sh', '-c', 'sleep 1000']);
    const sleeper = await run([TEST_IMAGE, 'sleep', '1000']);
    const neither = await run(['--annotation', 'io.berth.e2e.hook=off', TEST_IMAGE, 'sh', '-c', 'sleep 1000']);

    // runc runs poststart hooks before `docker run -d` returns.
    expect(fs.readdirSync(out).sort()).toEqual([`annotated-${annotated}`, `sleeper-${sleeper}`].sort());
    const state = JSON.parse(fs.readFileSync(path.join(out, `annotated-${annotated}`), 'utf8')) as { id: string; pid: number; annotations: Record<string, string> };
    expect(state.id).toBe(annotated);
    expect(state.pid).toBeGreaterThan(0);
    expect(state.annotations['io.berth.e2e.hook']).toBe('on');
    for (const id of [annotated, sleeper, neither]) {
      const st = await d.docker(['inspect', '-f', '{{.State.Running}}', id]);
      expect(st.stdout.trim(), st.stderr).toBe('true');
    }
    expect(d.log()).toContain(`OCI hook file ${path.join(hooksDir, '30-broken.json')} skipped: not JSON`);

    for (const id of [annotated, sleeper, neither]) expect((await d.docker(['rm', '-f', id])).code).toBe(0);
  }, 120_000);

  it('a container with poststart hooks is started with `runc start`, never the fast start (which would skip them on a runc that runs them there)', async () => {
    await d?.cleanup();
    d = undefined;
    const { dir, hooksDir, out, script } = hookFiles('fast-start');
    fs.writeFileSync(path.join(hooksDir, 'h.json'), JSON.stringify({ version: '1.0.0', hook: { path: script, args: [script, out, 'h'] }, when: { annotations: { '^io\\.berth\\.e2e\\.hook$': '^on$' } }, stages: ['poststart'] }));
    // A runc that logs its command lines: named runc, so the backend's fast start applies to it.
    const wrapDir = path.join(dir, 'wrap');
    fs.mkdirSync(wrapDir);
    const log = path.join(dir, 'runc-calls.log');
    const realRunc = execFileSync('sh', ['-c', 'command -v runc'], { encoding: 'utf8' }).trim();
    fs.writeFileSync(path.join(wrapDir, 'runc'), `#!/bin/sh\necho "$*" >> ${log}\nexec ${realRunc} "$@"\n`, { mode: 0o755 });
    const daemonJson = path.join(dir, 'daemon2.json');
    fs.writeFileSync(daemonJson, JSON.stringify({ plugins: { config: { 'oci-hooks': { dirs: [hooksDir] } } } }));

    d = await startBerthd({ args: ['--config-file', daemonJson, '--add-runtime', `logged=${path.join(wrapDir, 'runc')}`] });
    await d.loadTestImage();
    const run = async (args: string[]): Promise<string> => {
      const r = await d!.docker(['run', '-d', '--runtime', 'logged', ...args]);
      expect(r.code, r.stderr).toBe(0);
      return r.stdout.trim();
    };
    const hooked = await run(['--annotation', 'io.berth.e2e.hook=on', TEST_IMAGE, 'sleep', '1000']);
    const plain = await run([TEST_IMAGE, 'sleep', '1000']);
    expect(fs.readdirSync(out)).toEqual([`h-${hooked}`]);
    const calls = fs.readFileSync(log, 'utf8');
    expect(calls).toMatch(new RegExp(` start ${hooked}$`, 'm'));
    expect(calls).not.toMatch(new RegExp(` start ${plain}$`, 'm'));
    for (const id of [hooked, plain]) expect((await d.docker(['rm', '-f', id])).code).toBe(0);
  }, 120_000);
});
