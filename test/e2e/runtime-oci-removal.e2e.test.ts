/**
 * The OCI backend's removal of a container's files (issue 12) with real runc and conmon: with
 * the native addon, for an exited container whose monitor is gone, one removeTrees job of the
 * monitor's files (the log pump's files, the exit file, the socket dir entry) beside the
 * runtime's delete and one of the bundle after it, and no Node fs removal call; without it,
 * Node's fs.rm. Either way a
 * mount still in the bundle is never gone through: the delete fails naming it, the mount's
 * content is intact, and once it is unmounted the delete finishes.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { errorKind, type ExitInfo } from '@berth/core';
import { nativeAddon } from '@berth/native';
import { OciRuntimeBackend } from '@berth/runtime-oci';
import { busyboxCreateOptions, filesUnder, newId, ociBackendTeardown, runtimeSkipReason, testRootfs } from './runtime-helpers.js';

const calls = vi.hoisted(() => ({ rm: 0, removes: [] as string[][], addon: true }));
vi.mock('node:fs', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs')>();
  const rmSync = ((...a: Parameters<typeof real.rmSync>) => {
    calls.rm++;
    return real.rmSync(...a);
  }) as typeof real.rmSync;
  return { ...real, rmSync, default: { ...real, rmSync } };
});
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const rm = ((...a: Parameters<typeof real.rm>) => {
    calls.rm++;
    return real.rm(...a);
  }) as typeof real.rm;
  return { ...real, rm, default: { ...real, rm } };
});
vi.mock('@berth/native', async (importOriginal) => {
  const real = await importOriginal<typeof import('@berth/native')>();
  const addon = real.nativeAddon();
  const counted: typeof addon = addon && {
    ...addon,
    removeTrees: (paths) => {
      calls.removes.push(paths);
      return addon.removeTrees(paths);
    },
  };
  return { ...real, nativeAddon: () => (calls.addon ? counted : null) };
});

/** The addon (counted), taken while the mock still hands it out: the tests mount and unmount with it. */
const addon = nativeAddon();
const skip = runtimeSkipReason() ?? (addon ? null : 'native addon not loaded (not built)');

describe.skipIf(skip !== null)(`OCI backend: a container's files removed in one job${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let tmp: string;
  let backend: OciRuntimeBackend;
  const ids: string[] = [];
  const exits = new Map<string, (e: ExitInfo) => void>();
  const mounted: string[] = [];

  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-rt-rm-'));
    backend = new OciRuntimeBackend({ execRoot: path.join(tmp, 'exec'), runtimes: { runc: { path: 'runc' } }, defaultRuntime: 'runc' });
    backend.onExit((e) => exits.get(e.id)?.(e));
  });
  beforeEach(() => {
    calls.addon = true;
  });
  afterEach(async () => {
    for (const m of mounted.splice(0)) await addon!.umount2(m, 2 /* MNT_DETACH */);
  });
  ociBackendTeardown({ afterEach, afterAll }, () => ({ backend, tmp }), ids);

  /** A container run to its exit: its id, bundle and log. */
  async function ran(): Promise<{ id: string; bundle: string; log: string }> {
    const id = newId();
    ids.push(id);
    const log = path.join(tmp, 'data/containers', id, `${id}-json.log`);
    const exited = new Promise<ExitInfo>((resolve) => exits.set(id, resolve));
    await backend.create(busyboxCreateOptions(testRootfs(), id, ['/bin/sh', '-c', 'echo hi'], log));
    await backend.start(id);
    await exited;
    return { id, bundle: path.join(tmp, 'exec/oci', id), log };
  }
  const leftOf = (id: string) => filesUnder(path.join(tmp, 'exec')).filter((f) => f.includes(id));

  it('with the addon: an exited container\'s delete removes the pump files, exit file and socket entry in one job beside the runtime\'s delete, then the bundle in one; no Node fs removal (before: 7 calls)', async () => {
    const { id, bundle, log } = await ran();
    expect(leftOf(id).length).toBeGreaterThan(0);
    Object.assign(calls, { rm: 0, removes: [] });
    await backend.delete(id);
    ids.splice(ids.indexOf(id), 1);
    expect(calls.rm).toBe(0);
    expect(calls.removes).toHaveLength(2);
    expect(calls.removes[0]).toEqual(expect.arrayContaining([`${log}.k8s`, `${log}.k8s.pos`, path.join(tmp, 'exec/oci/exits', id)]));
    expect(calls.removes[0]).not.toContain(bundle);
    expect(calls.removes[1]).toEqual([bundle]);
    expect(leftOf(id)).toEqual([]);
    expect(fs.readdirSync(path.dirname(log)).filter((f) => f.includes('.k8s'))).toEqual([]);
    expect(fs.readFileSync(log, 'utf8')).toContain('hi');
  });

  it('without the addon: the same files removed with Node fs.rm', async () => {
    const { id, log } = await ran();
    calls.addon = false;
    Object.assign(calls, { rm: 0, removes: [] });
    await backend.delete(id);
    ids.splice(ids.indexOf(id), 1);
    expect(calls.removes).toEqual([]);
    expect(calls.rm).toBeGreaterThan(0);
    expect(leftOf(id)).toEqual([]);
    expect(fs.readdirSync(path.dirname(log)).filter((f) => f.includes('.k8s'))).toEqual([]);
  });

  it.each([{ addon: true }, { addon: false }])('a mount still in the bundle is never gone through: the delete fails naming it, then finishes once unmounted (%o)', async ({ addon: loaded }) => {
    const { id, bundle } = await ran();
    const at = path.join(bundle, 'held');
    fs.mkdirSync(at);
    await addon!.mount('tmpfs', at, 'tmpfs', 0, 'size=1m');
    mounted.push(at);
    fs.writeFileSync(path.join(at, 'data'), 'kept');
    calls.addon = loaded;
    const err = await backend.delete(id).catch((e: unknown) => e);
    expect(errorKind(err)).toBe('System');
    expect((err as Error).message).toMatch(new RegExp(`^bundle of ${id} still has mounts \\(${at}\\)`));
    expect(fs.readFileSync(path.join(at, 'data'), 'utf8')).toBe('kept');
    await addon!.umount2(mounted.pop()!, 0);
    await backend.delete(id);
    ids.splice(ids.indexOf(id), 1);
    expect(leftOf(id)).toEqual([]);
  });
});
