/**
 * 50 containers created, started, waited for and removed through an Engine with the OCI
 * backend (in a child process, as the daemon runs it), 8 in flight at a time, leave nothing behind: no processes, mounts, cgroups,
 * or files under the exec root.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Daemon, ensureBuilt, filesUnder, forceCleanup, mountsMentioning, processesMentioning, runtimeSkipReason, testRootfs, removeTestRootfs } from './runtime-helpers.js';

const skip = runtimeSkipReason();

/** cgroup directories named `id` anywhere in the first levels of every hierarchy. */
function cgroupDirsNamed(ids: Set<string>): string[] {
  const out: string[] = [];
  const walk = (dir: string, depth: number): void => {
    if (depth > 4) return;
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const p = path.join(dir, e.name);
      if (ids.has(e.name)) out.push(p);
      else walk(p, depth + 1);
    }
  };
  walk('/sys/fs/cgroup', 0);
  return out;
}

describe.skipIf(skip !== null)(`50 containers, 8 in flight, through the Engine${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let tmp: string;
  let daemon: Daemon;
  const ids: string[] = [];

  beforeAll(async () => {
    ensureBuilt();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-stress-'));
    daemon = Daemon.start(path.join(tmp, 'data'), path.join(tmp, 'exec'));
    await daemon.ready;
  }, 180_000);
  afterAll(async () => {
    await daemon?.kill9();
    if (tmp) forceCleanup(path.join(tmp, 'exec/oci/state/runc'), ids, [tmp]);
    removeTestRootfs();
  });

  it('leaves no process, mount, cgroup or file behind', async () => {
    const rootfs = testRootfs();
    const total = 50;
    const inFlight = 8;
    let next = 0;
    const codes: number[] = [];
    let maxActive = 0;
    let active = 0;
    const worker = async (): Promise<void> => {
      while (next < total) {
        const n = next++;
        active++;
        maxActive = Math.max(maxActive, active);
        try {
          const { Id } = await daemon.call<{ Id: string }>('create', {
            name: `stress-${n}`,
            Config: { Cmd: ['/bin/sh', '-c', `echo run ${n}; exit $((${n} % 3))`] },
            HostConfig: { NetworkMode: 'none' },
            rootfs,
          });
          ids.push(Id);
          const waited = daemon.call<{ StatusCode: number }>('wait', { id: Id, condition: 'next-exit' });
          await daemon.call('start', { id: Id });
          const r = await waited;
          codes[n] = r.StatusCode;
          await daemon.call('remove', { id: Id, force: true });
        } finally {
          active--;
        }
      }
    };
    await Promise.all(Array.from({ length: inFlight }, worker));
    expect(maxActive).toBe(inFlight);
    expect(codes).toEqual(Array.from({ length: total }, (_, n) => n % 3));
    expect(await daemon.call('list')).toEqual([]);

    const idSet = new Set(ids);
    expect(ids).toHaveLength(total);
    expect(ids.flatMap((id) => processesMentioning(id))).toEqual([]);
    // Only the daemon itself may mention the temp roots.
    expect(processesMentioning(tmp).filter((l) => !l.startsWith(`${daemon.proc.pid}:`))).toEqual([]);
    expect(mountsMentioning(tmp)).toEqual([]);
    expect(cgroupDirsNamed(idSet)).toEqual([]);
    expect(filesUnder(path.join(tmp, 'exec'))).toEqual([]);
    expect(fs.readdirSync(path.join(tmp, 'data/containers'))).toEqual([]);
  }, 180_000);
});
