/**
 * A start's hostname, hosts and resolv.conf (issue 12: the start path's thread-pool round trips):
 * one atomic write of the three files in the container's directory — one writeFiles job where
 * the native addon is loaded — not one write per file.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createTestEngine, type TestEngine } from '@berth/testing';
import { networkBasicPlugin } from '../src/index.js';

const writes = vi.hoisted(() => [] as { dir: string; files: string[] }[]);
vi.mock('@berth/core', async (importOriginal) => {
  const real = await importOriginal<typeof import('@berth/core')>();
  return {
    ...real,
    atomicWriteFiles: (dir: string, files: [string, string | Uint8Array][], opts?: Parameters<typeof real.atomicWriteFiles>[2]) => {
      writes.push({ dir, files: files.map(([name]) => name) });
      return real.atomicWriteFiles(dir, files, opts);
    },
    atomicWriteFile: (file: string, data: string | Uint8Array, opts?: Parameters<typeof real.atomicWriteFile>[2]) => {
      writes.push({ dir: file.slice(0, file.lastIndexOf('/')), files: [file.slice(file.lastIndexOf('/') + 1)] });
      return real.atomicWriteFile(file, data, opts);
    },
  };
});

let t: TestEngine | undefined;
afterEach(async () => {
  await t?.dispose();
  t = undefined;
});

describe("network-basic's files of a start", () => {
  it('are one write of the container directory (before: three)', async () => {
    t = await createTestEngine({ plugins: [] });
    const engine = await t.restart({ plugins: [networkBasicPlugin({ config: { hostsFile: join(t.dir, 'none'), resolvConfFile: join(t.dir, 'none'), hostname: 'h' } })] });
    const id = await t.createContainer({ HostConfig: { NetworkMode: 'none' }, Config: { Cmd: ['/bin/true'] } });
    writes.length = 0;
    await engine.containers.start(id);
    const dir = join(t.dataRoot, 'containers', id);
    expect(writes.filter((w) => w.dir === dir && w.files.some((f) => ['hostname', 'hosts', 'resolv.conf'].includes(f)))).toEqual([{ dir, files: ['hostname', 'hosts', 'resolv.conf'] }]);
  });
});
