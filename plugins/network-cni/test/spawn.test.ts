/**
 * spawn.ts: a CNI plugin run through the native addon's posix_spawn (its configuration on
 * stdin from a temp file via sh) behaves as one run through child_process — stdin read, only
 * the given environment, stdout/stderr and the exit status kept, killed at its timeout (status
 * null), no temp file left — and runTool throws with the tool's stderr. The native half is
 * skipped (with the reason) where the addon is not built.
 */
import { chmod, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nativeAddon, nativeAddonStatus } from '@berth/native';
import { runTool, runWithStdin } from '../src/spawn.js';

let dir = '';
let plugin = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-spawn-'));
  plugin = join(dir, 'fake-plugin');
  // echoes its stdin and two variables; fails with a message when asked; sleeps when asked
  await writeFile(plugin, '#!/bin/sh\nin=$(cat)\ncase "$CNI_COMMAND" in FAIL) echo "bad: $in" >&2; exit 3;; SLEEP) exec sleep 5;; esac\nprintf "%s|%s|%s" "$in" "$CNI_COMMAND" "${HOME:-nohome}"\n');
  await chmod(plugin, 0o755);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const ways = [
  ['child_process', () => null],
  ['native posix_spawn', () => nativeAddon()],
] as const;

describe.each(ways)('runWithStdin through %s', (way, addon) => {
  const skip = way.startsWith('native') && !nativeAddon() ? `the native addon is not loaded: ${nativeAddonStatus().fallback}` : null;
  it.skipIf(!!skip)(`stdin, only the given environment, output and status, the timeout${skip ? ` (skipped: ${skip})` : ''}`, async () => {
    const before = (await readdir(tmpdir())).filter((f) => f.startsWith('berth-cni-')).length;
    const env = { CNI_COMMAND: 'ADD', PATH: process.env.PATH ?? '/usr/bin:/bin' };
    expect(await runWithStdin(plugin, env, '{"a": "b c"}', 5000, addon())).toEqual({ code: 0, stdout: '{"a": "b c"}|ADD|nohome', stderr: '' });
    const failed = await runWithStdin(plugin, { ...env, CNI_COMMAND: 'FAIL' }, 'x', 5000, addon());
    expect(failed).toEqual({ code: 3, stdout: '', stderr: 'bad: x\n' });
    const slow = await runWithStdin(plugin, { ...env, CNI_COMMAND: 'SLEEP' }, '', 200, addon());
    expect(slow.code).toBeNull();
    expect((await readdir(tmpdir())).filter((f) => f.startsWith('berth-cni-')).length).toBe(before);
    expect(await runTool('sh', ['-c', 'echo out'], 5000, addon())).toBe('out\n');
    await expect(runTool('sh', ['-c', 'echo why >&2; exit 1'], 5000, addon())).rejects.toMatchObject({ stderr: 'why\n' });
  });
});
