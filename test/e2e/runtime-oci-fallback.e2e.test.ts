/**
 * The OCI runtime backend without @berth/native's addon (BERTH_NATIVE=0): conmon and runc go
 * through Node's child_process, the fallback for machines where the addon was not built. Run
 * to completion with exit code, stop, a failed create that leaves nothing. (vitest runs each
 * file in its own worker, so the addon stays off for this file only.)
 */
process.env.BERTH_NATIVE = '0';

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ExitInfo } from '@berth/core';
import { nativeAddon } from '@berth/native';
import { OciRuntimeBackend } from '@berth/runtime-oci';
import { busyboxCreateOptions, newId, ociBackendTeardown, processesMentioning, runtimeSkipReason, testRootfs } from './runtime-helpers.js';

const skip = runtimeSkipReason();

describe.skipIf(skip !== null)(`OCI runtime backend through child_process (no addon)${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let tmp: string;
  let rootfs: string;
  let backend: OciRuntimeBackend;
  const ids: string[] = [];
  const exits = new Map<string, (e: ExitInfo) => void>();

  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-rtf-'));
    rootfs = testRootfs();
    backend = new OciRuntimeBackend({ execRoot: path.join(tmp, 'exec'), runtimes: { runc: { path: 'runc' } }, defaultRuntime: 'runc' });
    backend.onExit((e) => exits.get(e.id)?.(e));
  });
  ociBackendTeardown({ afterEach, afterAll }, () => ({ backend, tmp }), ids);

  const run = async (args: string[]) => {
    const id = newId();
    ids.push(id);
    const exited = new Promise<ExitInfo>((resolve) => exits.set(id, resolve));
    await backend.create(busyboxCreateOptions(rootfs, id, args, path.join(tmp, 'data', id, 'log.json')));
    await backend.start(id);
    return { id, exited };
  };

  it('the addon is off in this file', () => {
    expect(nativeAddon()).toBeNull();
  });

  it('runs to completion with the exit code; delete removes runc state and bundle', async () => {
    const { id, exited } = await run(['/bin/sh', '-c', 'exit 5']);
    expect((await exited).exitCode).toBe(5);
    await backend.delete(id);
    ids.splice(ids.indexOf(id), 1);
    expect(fs.existsSync(path.join(tmp, 'exec/oci/state/runc', id))).toBe(false);
    expect(fs.existsSync(path.join(tmp, 'exec/oci', id))).toBe(false);
  });

  it('kills a running container (runc kill through child_process)', async () => {
    const { id, exited } = await run(['/bin/sleep', '60']);
    await backend.kill(id, 9);
    expect((await exited).exitCode).toBe(137);
  });

  it('a failed create reports the runtime\'s words and leaves nothing', async () => {
    const id = newId();
    const err = await backend
      .create(busyboxCreateOptions(rootfs, id, ['/no/such/binary'], path.join(tmp, 'data', id, 'log.json')))
      .then(() => null, (e: unknown) => e as Error);
    if (!err) ids.push(id);
    expect(err?.message).toMatch(/no such file or directory/);
    expect(err?.message).not.toMatch(/level=error/);
    expect(fs.existsSync(path.join(tmp, 'exec/oci', id))).toBe(false);
    expect(processesMentioning(id)).toEqual([]);
  });
});
