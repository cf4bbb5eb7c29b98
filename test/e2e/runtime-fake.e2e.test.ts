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

describe.skipIf(skip !== null)(`fake OCI runtime through the OCI backend${skip ? ` (skipped: ${skip})` : ''}`, () => {
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
    if (tmp) forceCleanup(path.join(tmp, 'exec/oci/state/runc'), ids, [tmp]);
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
    expect(backend.runtimes().map((r) => r.name)).toEqual(['fake', 'runc']);
    expect(backend.runtimes().find((r) => r.name === 'fake')).toEqual({ name: 'fake', path: FAKE_RUNTIME });
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

  it('passes the create options\' runtimeArgs (daemon.json\'s, as the engine fills them in) to the runtime binary on every call', async () => {
    const argLog = path.join(tmp, 'fake-argv.log');
    const { runtimes, defaultRuntime } = buildRuntimes({
      daemonJson: { fakeargs: { path: FAKE_RUNTIME, runtimeArgs: ['--log', argLog] } },
      defaultRuntime: 'fakeargs',
    });
    const b2 = new OciRuntimeBackend({ execRoot: path.join(tmp, 'exec-args'), runtimes, defaultRuntime });
    const id = newId();
    ids.push(id);
    try {
      const exited = new Promise<ExitInfo>((resolve) => b2.onExit((e) => e.id === id && resolve(e)));
      await b2.create({
        id,
        spec: busyboxSpec(testRootfs(), id, ['/bin/true']),
        runtime: '', // HostConfig.Runtime empty: the default runtime
        // The engine takes them from the backend's runtimes() (daemon.json runtimeArgs).
        runtimeArgs: [...(b2.runtimes().find((r) => r.name === 'fakeargs')!.runtimeArgs ?? [])],
        rootUid: 0,
        rootGid: 0,
        stdio: { tty: false, openStdin: false, stdinOnce: false },
        log: { path: path.join(tmp, 'containers', id, `${id}-json.log`) },
      });
      await b2.start(id);
      expect((await exited).exitCode).toBe(0);
      await b2.delete(id);
      const calls = fs.readFileSync(argLog, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as string[]);
      const VERBS = ['create', 'start', 'state', 'delete', 'kill'];
      const verbs = calls.map((c) => c.find((a) => VERBS.includes(a)));
      expect(verbs).toEqual(expect.arrayContaining(['create', 'start', 'delete']));
      for (const c of calls) {
        // Global arguments come before the subcommand: the backend's --root, then runtimeArgs.
        const global = c.slice(0, c.findIndex((a) => VERBS.includes(a)));
        expect(global).toEqual(['--root', path.join(tmp, 'exec-args/oci/state/fakeargs'), '--log', argLog]);
      }
    } finally {
      await b2.close();
    }
  });

  it('a missing conmon is a clear error, not a crash', async () => {
    const b3 = new OciRuntimeBackend({
      execRoot: path.join(tmp, 'exec-noconmon'),
      runtimes: { runc: { path: 'runc' } },
      defaultRuntime: 'runc',
      conmonPath: '/nonexistent/conmon',
    });
    try {
      const err = await b3
        .create({
          id: newId(),
          spec: busyboxSpec(testRootfs(), 'x', ['/bin/true']),
          runtime: 'runc',
          runtimeArgs: [],
          rootUid: 0,
          rootGid: 0,
          stdio: { tty: false, openStdin: false, stdinOnce: false },
          log: { path: path.join(tmp, 'noconmon.log') },
        })
        .catch((e: unknown) => e as Error);
      expect((err as Error).message).toMatch(/conmon not found \(\/nonexistent\/conmon\)/);
    } finally {
      await b3.close();
    }
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
