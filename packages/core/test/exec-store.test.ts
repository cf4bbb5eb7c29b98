/**
 * ExecStore (exec-store.ts): a burst of saves lands as the newest snapshot (coalesced: the
 * writes in between are skipped, never reordered), and nothing is written for a container once
 * its records are dropped (its directory is being removed).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryLogger, type ExecRecord } from '../src/index.js';
import { EXECS_FILE, ExecStore } from '../src/exec-store.js';

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'berth-exec-store-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const CID = 'c'.repeat(64);

function rec(n: number): ExecRecord {
  return {
    ID: `e${n}`, ContainerID: CID, Running: false, ExitCode: n, Pid: 0, OpenStdin: false, OpenStdout: true, OpenStderr: true, CanRemove: false,
    DetachKeys: '', ProcessConfig: { tty: false, entrypoint: 'true', arguments: [], privileged: false, user: '' }, Config: { Cmd: ['true'] },
  };
}

describe('ExecStore', () => {
  it('a burst of saves ends with the newest snapshot on disk and loads back', async () => {
    mkdirSync(join(root, CID));
    const store = new ExecStore((id) => join(root, id), new MemoryLogger());
    const saves = [1, 2, 3, 4, 5].map((n) => store.save(CID, Array.from({ length: n }, (_, i) => rec(i))));
    await Promise.all(saves);
    expect((JSON.parse(readFileSync(join(root, CID, EXECS_FILE), 'utf8')) as ExecRecord[]).map((e) => e.ID)).toEqual(['e0', 'e1', 'e2', 'e3', 'e4']);
    expect((await store.load(CID)).map((e) => e.ExitCode)).toEqual([0, 1, 2, 3, 4]);
    expect(readdirSync(join(root, CID))).toEqual([EXECS_FILE]); // no temp file left
  });

  it('writes nothing for a dropped container, and a write into a removed directory is only logged', async () => {
    const logger = new MemoryLogger();
    const store = new ExecStore((id) => join(root, id), logger);
    await store.save(CID, [rec(1)]); // no directory: the write fails, logged, nothing thrown
    expect(logger.entries.some((e) => e.level === 'warn' && e.msg === 'cannot save the exec records')).toBe(true);
    mkdirSync(join(root, CID));
    const dropping = store.drop(CID);
    await store.save(CID, [rec(2)]);
    await dropping;
    expect(existsSync(join(root, CID, EXECS_FILE))).toBe(false);
  });
});
