/**
 * The alternate-runtime path with a second real binary: test/fixtures/fake-oci-runtime,
 * registered like `--add-runtime fake=PATH`, runs containers through the same backend
 * (conmon, exit files, json-file logs) as runc.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readLogs, type ExitInfo } from '@berth/core';
import { OciRuntimeBackend, buildRuntimes } from '@berth/runtime-oci';
import { busyboxSpec, FAKE_RUNTIME, forceCleanup, newId, processesMentioning, runtimeSkipReason, testRootfs, removeTestRootfs } from './runtime-helpers.js';

const skip = runtimeSkipReason();

describe.skipIf(skip !== null)('fake OCI runtime through the OCI backend', () => {
  let tmp: string;
  let backend: OciRuntimeBackend;
  const ids: string[] = [];
  const exits = new Map<string, (e: ExitInfo) => void>();

  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-fake-'));
    const { runtimes, defaultRuntime } = buildRuntimes({ addRuntime: [`fake=${FAKE_RUNTIME}`], defaultRuntime: 'runc' });
    backend = new OciRuntimeBackend({ execRoot: path.join(tmp, 'exec'), runtimes, defaultRuntime });
    backend.onExit((e) => exits.get(e.id)?.(e));
  });
  afterAll(async () => {
    for (const id of ids) await backend.delete(id, { force: true }).catch(() => undefined);
    await backend?.close();
    forceCleanup(path.join(tmp, 'exec/oci/state/runc'), ids, [tmp]);
    removeTestRootfs();
  });

  async function run(args: string[]): Promise<{ id: string; log: string; exit: Promise<ExitInfo> }> {
    const id = newId();
    ids.push(id);
    const log = path.join(tmp, 'containers', id, `${id}-json.log`);
    const exit = new Promise<ExitInfo>((resolve) => exits.set(id, resolve));
    await backend.create({
      id,
      spec: busyboxSpec(testRootfs(), id, args),
      runtime: 'fake',
      runtimeArgs: [],
      rootUid: 0,
      rootGid: 0,
      stdio: { tty: false, openStdin: false, stdinOnce: false },
      log: { path: log },
    });
    return { id, log, exit };
  }

  it('lists both runtimes', () => {
    expect(backend.runtimes()).toEqual(['fake', 'runc']);
  });

  it('runs a container to completion with exit code and logs', async () => {
    const { id, log, exit } = await run(['/bin/sh', '-c', 'echo "via fake $(cat /etc/hostname 2>/dev/null || echo)"; echo e >&2; exit 4']);
    expect((await backend.state(id))?.status).toBe('created');
    // The fake runtime keeps its state where the backend told it to (--root).
    expect(fs.existsSync(path.join(tmp, 'exec/oci/state/fake', id, 'state.json'))).toBe(true);
    await backend.start(id);
    const e = await exit;
    expect(e.exitCode).toBe(4);
    const lines: string[] = [];
    for await (const m of readLogs(log)) lines.push(`${m.stream}:${m.line.toString()}`);
    expect(lines).toContain('stderr:e\n');
    expect(lines.some((l) => l.startsWith('stdout:via fake'))).toBe(true);
    await backend.delete(id);
    expect(fs.existsSync(path.join(tmp, 'exec/oci/state/fake', id))).toBe(false);
    expect(processesMentioning(id)).toEqual([]);
  });

  it('stops a running container with a signal', async () => {
    const { id, exit } = await run(['/bin/sh', '-c', 'trap "exit 143" TERM; while true; do sleep 0.05; done']);
    await backend.start(id);
    expect((await backend.state(id))?.status).toBe('running');
    await backend.kill(id, 15);
    expect((await exit).exitCode).toBe(143);
    await backend.delete(id);
  });

  it('a failed create through the fake runtime leaves nothing behind', async () => {
    const id = newId();
    const err = await backend
      .create({
        id,
        spec: busyboxSpec(testRootfs(), id, ['/no/such/thing']),
        runtime: 'fake',
        runtimeArgs: [],
        rootUid: 0,
        rootGid: 0,
        stdio: { tty: false, openStdin: false, stdinOnce: false },
        log: { path: path.join(tmp, 'containers', id, `${id}-json.log`) },
      })
      .catch((e: unknown) => e as Error);
    expect((err as Error).message).toMatch(/no such file or directory/);
    expect(fs.existsSync(path.join(tmp, 'exec/oci', id))).toBe(false);
    expect(fs.existsSync(path.join(tmp, 'exec/oci/state/fake', id))).toBe(false);
    expect(processesMentioning(id)).toEqual([]);
  });
});
