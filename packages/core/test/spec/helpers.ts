import { mkdtempSync, rmSync, cpSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ContainerConfig, ContainerRecord, HostConfig } from '../../src/types.js';
import type { OciSpec } from '../../src/oci.js';
import { newContainerRecord } from '../../src/record-factory.js';
import { buildOciSpec, type SpecBuildInput } from '../../src/spec/index.js';
import type { SpecHostInfo } from '../../src/spec/host.js';
import { ociSchemaErrors } from '../../../testing/src/specs.js';

export const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '../../../..');
export const fixturesDir = path.join(here, 'fixtures');

export function makeRecord(opts: { id?: string; path?: string; args?: string[]; config?: ContainerConfig; hostConfig?: HostConfig } = {}): ContainerRecord {
  const id = opts.id ?? 'c0ffee0123456789abcdef0123456789abcdef0123456789abcdef0123456789';
  return newContainerRecord({
    ID: id,
    Name: '/test',
    Created: new Date(0).toISOString(),
    Path: opts.path ?? 'sleep',
    Args: opts.args ?? ['3600'],
    Config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Hostname: id.slice(0, 12), ...(opts.config ?? {}) },
    HostConfig: opts.hostConfig ?? {},
  });
}

/** A temp dir removed by the returned function. */
export function tempDir(prefix = 'berth-spectest-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A temp rootfs with the fixture users and groups (alice, bob, users, audio, video). */
export function tempRootfs(): { dir: string; cleanup: () => void } {
  const t = tempDir('berth-spectest-rootfs-');
  cpSync(path.join(fixturesDir, 'rootfs'), t.dir, { recursive: true });
  return t;
}

/** Fixed host facts, so unit tests do not depend on the machine. */
export const TEST_HOST: SpecHostInfo = { capLastCap: 40, cgroupV2: false, cpuCount: 4 };

/** Builds a spec for a record made of these Config/HostConfig fields, on `rootfs`. */
export async function build(
  rootfs: string,
  config: ContainerConfig = {},
  hostConfig: HostConfig = {},
  extra: Partial<SpecBuildInput> & { path?: string; args?: string[] } = {},
): Promise<OciSpec> {
  const { path: p, args, ...rest } = extra;
  const spec = await buildOciSpec({
    container: makeRecord({ config, hostConfig, path: p, args }),
    rootfsPath: rootfs,
    host: TEST_HOST,
    ...rest,
  });
  // every spec a test builds must be valid for the runtime
  const errors = ociSchemaErrors('oci-runtime-spec/config-schema.json', spec);
  if (errors) throw new Error(`spec does not validate against the OCI schema: ${errors}`);
  return spec;
}

/** The rejection of a promise (fails the test if it resolves). */
export async function rejection(p: Promise<unknown>): Promise<Error & { kind?: string }> {
  try {
    await p;
  } catch (err) {
    return err as Error & { kind?: string };
  }
  throw new Error('expected a rejection, got a value');
}

/** The error thrown by fn (fails the test if it returns). */
export function thrown(fn: () => unknown): Error & { kind?: string } {
  try {
    fn();
  } catch (err) {
    return err as Error & { kind?: string };
  }
  throw new Error('expected an error, got a value');
}

/** Deep-freezes a value, so that a mutating spec opt throws in strict mode. */
export function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object') {
    for (const k of Object.keys(v)) deepFreeze((v as Record<string, unknown>)[k]);
    Object.freeze(v);
  }
  return v;
}
