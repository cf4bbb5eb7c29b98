/**
 * The OCI runtime backend with real runc and conmon: run to completion with exit code and
 * json-file logs, stop by SIGTERM and by SIGKILL, exec, pause/resume, attach with and
 * without a TTY, failed create leaves nothing, runtime registry errors.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { errorKind, readLogs, type ExitInfo, type OciProcess } from '@berth/core';
import { OciRuntimeBackend } from '@berth/runtime-oci';
import {
  busyboxCreateOptions,
  busyboxSpec,
  cgroupsNamed,
  filesUnder,
  mountsMentioning,
  newId,
  ociBackendTeardown,
  processesMentioning,
  runtimeSkipReason,
  Sink,
  testRootfs,
} from './runtime-helpers.js';

const skip = runtimeSkipReason();
if (skip) console.warn(`runtime-oci e2e skipped: ${skip}`);

describe.skipIf(skip !== null)(`OCI runtime backend with runc${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let tmp: string;
  let rootfs: string;
  let backend: OciRuntimeBackend;
  const ids: string[] = [];
  const exits = new Map<string, ExitInfo>();
  const waiters = new Map<string, (e: ExitInfo) => void>();

  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-rt-'));
    rootfs = testRootfs();
    backend = new OciRuntimeBackend({
      execRoot: path.join(tmp, 'exec'),
      runtimes: { runc: { path: 'runc' } },
      defaultRuntime: 'runc',
    });
    backend.onExit((e) => {
      if (e.execId) return;
      exits.set(e.id, e);
      waiters.get(e.id)?.(e);
    });
  });
  ociBackendTeardown({ afterEach, afterAll }, () => ({ backend, tmp }), ids);

  const waitExit = (id: string, ms = 15_000): Promise<ExitInfo> => {
    const have = exits.get(id);
    if (have) return Promise.resolve(have);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no exit of ${id} within ${ms} ms`)), ms);
      waiters.set(id, (e) => {
        clearTimeout(t);
        resolve(e);
      });
    });
  };

  async function create(
    args: string[],
    o: { tty?: boolean; openStdin?: boolean; stdinOnce?: boolean; maxSize?: number; maxFile?: number; memoryLimit?: number } = {},
  ): Promise<{ id: string; log: string; pid: number }> {
    const id = newId();
    ids.push(id);
    const log = path.join(tmp, 'data/containers', id, `${id}-json.log`);
    const { pid } = await backend.create({
      id,
      spec: busyboxSpec(rootfs, id, args, { tty: o.tty, memoryLimit: o.memoryLimit }),
      runtime: 'runc',
      runtimeArgs: [],
      rootUid: 0,
      rootGid: 0,
      stdio: { tty: o.tty ?? false, openStdin: o.openStdin ?? false, stdinOnce: o.stdinOnce ?? false },
      log: { path: log, maxSize: o.maxSize, maxFile: o.maxFile },
    });
    return { id, log, pid };
  }

  async function logsOf(log: string): Promise<string[]> {
    const out: string[] = [];
    for await (const m of readLogs(log)) out.push(`${m.stream}:${m.line.toString()}`);
    return out;
  }

  it('runs a busybox container to completion with its exit code and json-file logs', async () => {
    const { id, log, pid } = await create(['/bin/sh', '-c', 'echo out; echo err >&2; printf partial; exit 3']);
    expect(pid).toBeGreaterThan(0);
    expect((await backend.state(id))?.status).toBe('created');
    const bundle = path.join(tmp, 'exec/oci', id);
    expect(fs.statSync(bundle).mode & 0o777).toBe(0o700);
    await backend.start(id);
    const exit = await waitExit(id);
    expect(exit.exitCode).toBe(3);
    expect(exit.oomKilled).toBe(false);
    expect(Date.parse(exit.exitedAt)).toBeGreaterThan(Date.now() - 60_000);
    const st = await backend.state(id);
    expect(st?.status).toBe('stopped');
    expect(st?.exit?.exitCode).toBe(3);
    // Logs are complete when the exit is reported.
    const lines = await logsOf(log);
    expect(lines.filter((l) => l.startsWith('stdout:'))).toEqual(['stdout:out\n', 'stdout:partial']);
    expect(lines.filter((l) => l.startsWith('stderr:'))).toEqual(['stderr:err\n']);
    for (const raw of fs.readFileSync(log, 'utf8').trim().split('\n')) {
      expect(Object.keys(JSON.parse(raw) as object)).toEqual(['log', 'stream', 'time']);
      expect((JSON.parse(raw) as { time: string }).time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    }
  });

  it('makes the bundle 0700 and owned by the container root (remapped ids)', async () => {
    const id = newId();
    ids.push(id);
    await backend.create({
      id,
      spec: busyboxSpec(rootfs, id, ['/bin/true']),
      runtime: 'runc',
      runtimeArgs: [],
      rootUid: 231072,
      rootGid: 231073,
      stdio: { tty: false, openStdin: false, stdinOnce: false },
      log: { path: path.join(tmp, 'data/containers', id, `${id}-json.log`) },
    });
    const st = fs.statSync(path.join(tmp, 'exec/oci', id));
    expect([st.uid, st.gid, st.mode & 0o777]).toEqual([231072, 231073, 0o700]);
    await backend.start(id);
    expect((await waitExit(id)).exitCode).toBe(0);
  });

  it('reports the exit within milliseconds of it (event-driven, not polled)', async () => {
    const { id } = await create(['/bin/true']);
    const t0 = Date.now();
    await backend.start(id);
    const exit = await waitExit(id);
    const lag = Date.now() - Date.parse(exit.exitedAt);
    expect(exit.exitCode).toBe(0);
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(lag).toBeLessThan(300);
  });

  it('stops a long-running container with SIGTERM', async () => {
    const { id } = await create(['/bin/sh', '-c', 'trap "exit 143" TERM; echo ready; while true; do sleep 0.05; done']);
    await backend.start(id);
    expect((await backend.state(id))?.status).toBe('running');
    await backend.kill(id, 15);
    const exit = await waitExit(id, 5000);
    expect(exit.exitCode).toBe(143);
    await expect(backend.kill(id, 15)).rejects.toSatisfy((e) => errorKind(e) === 'Conflict');
  });

  it('needs SIGKILL after the timeout when SIGTERM is ignored', async () => {
    const { id } = await create(['/bin/sh', '-c', 'trap "" TERM; while true; do sleep 0.05; done']);
    await backend.start(id);
    await backend.kill(id, 15);
    const raced = await Promise.race([waitExit(id, 5000), new Promise<null>((r) => setTimeout(() => r(null), 700))]);
    expect(raced).toBeNull();
    expect((await backend.state(id))?.status).toBe('running');
    await backend.kill(id, 9, { all: true });
    const exit = await waitExit(id, 5000);
    expect(exit.exitCode).toBe(137);
  });

  it('pauses and resumes', async () => {
    const { id } = await create(['/bin/sh', '-c', 'while true; do sleep 0.05; done']);
    await backend.start(id);
    await backend.pause(id);
    expect((await backend.state(id))?.status).toBe('paused');
    await expect(backend.delete(id)).rejects.toSatisfy((e) => errorKind(e) === 'Conflict');
    await backend.resume(id);
    expect((await backend.state(id))?.status).toBe('running');
    expect(await backend.list()).toContain(id);
    // A paused container can be removed by force.
    await backend.pause(id);
    await backend.delete(id, { force: true });
    ids.splice(ids.indexOf(id), 1);
    expect(await backend.state(id)).toBeNull();
    expect(await backend.list()).not.toContain(id);
    expect(processesMentioning(id)).toEqual([]);
    expect(cgroupsNamed(id)).toEqual([]);
  });

  it('updates the resources of a running container', async () => {
    const { id } = await create(['/bin/sh', '-c', 'while true; do sleep 0.05; done'], { memoryLimit: 64 * 1024 * 1024 });
    await backend.start(id);
    const limitFile = cgroupsNamed(id)
      .map((d) => path.join(d, 'memory.limit_in_bytes'))
      .concat(cgroupsNamed(id).map((d) => path.join(d, 'memory.max')))
      .find((f) => fs.existsSync(f));
    expect(limitFile).toBeDefined();
    expect(fs.readFileSync(limitFile!, 'utf8').trim()).toBe(String(64 * 1024 * 1024));
    await backend.update!(id, { memory: { limit: 96 * 1024 * 1024 } });
    expect(fs.readFileSync(limitFile!, 'utf8').trim()).toBe(String(96 * 1024 * 1024));
  });

  it('execs a process with its own env, user, workdir, stdio and exit code', async () => {
    const { id } = await create(['/bin/sh', '-c', 'while true; do sleep 0.05; done']);
    await backend.start(id);
    const out = new Sink();
    const err = new Sink();
    const proc: OciProcess = {
      user: { uid: 1000, gid: 1000 },
      args: ['/bin/sh', '-c', 'echo "$FOO"; id -u; pwd; echo oops >&2; exit 5'],
      env: ['PATH=/bin', 'FOO=bar'],
      cwd: '/tmp',
    };
    const execId = newId();
    const s = await backend.exec!(id, {
      execId,
      process: proc,
      tty: false,
      openStdin: false,
      streams: { stdout: out as unknown as NodeJS.WritableStream, stderr: err as unknown as NodeJS.WritableStream },
    });
    expect(s.pid).toBeGreaterThan(0);
    expect(await s.exited).toBe(5);
    expect(out.text()).toBe('bar\n1000\n/tmp\n');
    expect(err.text()).toBe('oops\n');
    // stdin and a TTY
    const tout = new Sink();
    const stdin = new PassThrough();
    const execId2 = newId();
    const s2 = await backend.exec!(id, {
      execId: execId2,
      process: { user: { uid: 0, gid: 0 }, args: ['/bin/sh', '-c', 'tty; read x; echo "got $x"; stty size'], env: ['PATH=/bin'], cwd: '/' },
      tty: true,
      openStdin: true,
      streams: { stdin, stdout: tout as unknown as NodeJS.WritableStream },
    });
    await tout.waitFor(/\/dev\/pts\/\d+/);
    // Resize the exec's own TTY, then let it print the size it sees.
    await backend.resize!(id, { height: 21, width: 77 }, execId2);
    stdin.write('hello\n');
    expect(await s2.exited).toBe(0);
    await tout.waitFor(/got hello/);
    await tout.waitFor(/21 77/);
    expect(processesMentioning(execId)).toEqual([]);
  });

  it('attaches to stdin/stdout of a running container', async () => {
    const { id, log } = await create(['/bin/sh', '-c', 'while read l; do echo "echo:$l"; echo "err:$l" >&2; done; exit 7'], {
      openStdin: true,
      stdinOnce: true,
    });
    const out = new Sink();
    const err = new Sink();
    const stdin = new PassThrough();
    const session = await backend.attach!(id, {
      stdin,
      stdout: out as unknown as NodeJS.WritableStream,
      stderr: err as unknown as NodeJS.WritableStream,
    });
    await backend.start(id);
    stdin.write('one\n');
    await out.waitFor(/echo:one\n/);
    await err.waitFor(/err:one\n/);
    stdin.end('two\n');
    expect((await waitExit(id)).exitCode).toBe(7);
    await session.done;
    expect(out.text()).toBe('echo:one\necho:two\n');
    expect(await logsOf(log)).toContain('stdout:echo:two\n');
  });

  it('attaches with a TTY and resizes it', async () => {
    const { id } = await create(['/bin/sh', '-c', 'read x; stty size; exit 0'], { tty: true, openStdin: true, stdinOnce: true });
    const out = new Sink();
    const stdin = new PassThrough();
    await backend.attach!(id, { stdin, stdout: out as unknown as NodeJS.WritableStream });
    await backend.start(id);
    await backend.resize!(id, { height: 33, width: 111 });
    stdin.write('go\n');
    await out.waitFor(/33 111/);
    expect((await waitExit(id)).exitCode).toBe(0);
  });

  it('applies the initial console size of a TTY container', async () => {
    const id = newId();
    ids.push(id);
    const log = path.join(tmp, 'data/containers', id, `${id}-json.log`);
    await backend.create({
      id,
      spec: busyboxSpec(rootfs, id, ['/bin/sh', '-c', 'stty size'], { tty: true }),
      runtime: 'runc',
      runtimeArgs: [],
      rootUid: 0,
      rootGid: 0,
      stdio: { tty: true, openStdin: false, stdinOnce: false, consoleSize: [42, 123] },
      log: { path: log },
    });
    await backend.start(id);
    expect((await waitExit(id)).exitCode).toBe(0);
    expect((await logsOf(log)).join('')).toContain('42 123');
  });

  it('keeps json-file rotation limits for chatty containers', async () => {
    const { id, log } = await create(['/bin/sh', '-c', 'i=0; while [ $i -lt 400 ]; do echo "line $i"; i=$((i+1)); done'], {
      maxSize: 2000,
      maxFile: 3,
    });
    await backend.start(id);
    expect((await waitExit(id)).exitCode).toBe(0);
    const files = fs.readdirSync(path.dirname(log)).filter((f) => !f.includes('.k8s'));
    expect(files.sort()).toEqual([`${id}-json.log`, `${id}-json.log.1`, `${id}-json.log.2`]);
    expect(fs.existsSync(`${log}.1`)).toBe(true);
    expect(fs.existsSync(`${log}.2`)).toBe(true);
    expect(fs.existsSync(`${log}.3`)).toBe(false);
    const lines = await logsOf(log);
    expect(lines[lines.length - 1]).toBe('stdout:line 399\n');
    const nums = lines.map((l) => Number(/line (\d+)/.exec(l)![1]));
    expect(nums).toEqual(nums.map((_, i) => nums[0] + i));
  });

  it('a failed create leaves no bundle, monitor, cgroup, mount or process behind', async () => {
    const id = newId();
    const log = path.join(tmp, 'data/containers', id, `${id}-json.log`);
    const err = await backend
      .create(busyboxCreateOptions(rootfs, id, ['/no/such/binary'], log))
      .then(
        () => null,
        (e: unknown) => e as Error,
      );
    if (!err) ids.push(id);
    expect(err).toBeInstanceOf(Error);
    expect(err!.message).toMatch(/no such file or directory|not found/i);
    expect(fs.existsSync(path.join(tmp, 'exec/oci', id))).toBe(false);
    expect(fs.existsSync(path.join(tmp, 'exec/oci/exits', id))).toBe(false);
    expect(fs.existsSync(path.join(tmp, 'exec/oci/s', id))).toBe(false);
    expect(fs.existsSync(path.join(tmp, 'exec/oci/state/runc', id))).toBe(false);
    expect(processesMentioning(id)).toEqual([]);
    expect(cgroupsNamed(id)).toEqual([]);
    expect(mountsMentioning(id)).toEqual([]);
    expect(await backend.state(id)).toBeNull();
  });

  it('rejects an unknown runtime listing the known ones, and a missing binary clearly', async () => {
    const base = {
      id: newId(),
      spec: busyboxSpec(rootfs, 'x', ['/bin/true']),
      runtimeArgs: [],
      rootUid: 0,
      rootGid: 0,
      stdio: { tty: false, openStdin: false, stdinOnce: false },
      log: { path: path.join(tmp, 'x.log') },
    };
    const e1 = await backend.create({ ...base, runtime: 'nope' }).catch((e: unknown) => e as Error);
    expect(errorKind(e1)).toBe('InvalidParameter');
    expect((e1 as Error).message).toMatch(/nope.*runc/);
    const b2 = new OciRuntimeBackend({
      execRoot: path.join(tmp, 'exec2'),
      runtimes: { runc: { path: 'runc' }, gone: { path: '/nonexistent/bin/runtime' } },
      defaultRuntime: 'runc',
    });
    try {
      const e2 = await b2.create({ ...base, runtime: 'gone' }).catch((e: unknown) => e as Error);
      expect(errorKind(e2)).toBe('System');
      expect((e2 as Error).message).toMatch(/gone.*\/nonexistent\/bin\/runtime.*not found/);
      expect(filesUnder(path.join(tmp, 'exec2/oci'))).toEqual([]);
    } finally {
      await b2.close();
    }
  });

  it('reports OOMKilled when the kernel kills for memory', async () => {
    const { id } = await create(['/bin/sh', '-c', 'x=a; while true; do x="$x$x"; done'], { memoryLimit: 16 * 1024 * 1024 });
    await backend.start(id);
    const exit = await waitExit(id, 30_000);
    expect(exit.exitCode).toBe(137);
    expect(exit.oomKilled).toBe(true);
    // conmon writes its `oom` marker into its working directory: the bundle, never ours.
    expect(fs.existsSync(path.join(process.cwd(), 'oom'))).toBe(false);
  });

  // Checkpoint/restore with runc + CRIU: runtime-checkpoint.e2e.test.ts.

  it('a create never destroys a container the runtime still runs without its bundle', async () => {
    const { id, pid } = await create(['/bin/sh', '-c', 'while true; do sleep 0.05; done']);
    await backend.start(id);
    const bundle = path.join(tmp, 'exec/oci', id);
    fs.renameSync(bundle, `${bundle}.aside`); // lost, as by a bad cleanup; runc's state is still there
    const restarted = new OciRuntimeBackend({ execRoot: path.join(tmp, 'exec'), runtimes: { runc: { path: 'runc' } }, defaultRuntime: 'runc' });
    try {
      const err = await restarted
        .create({ ...busyboxCreateOptions(rootfs, id, ['/bin/true'], path.join(tmp, 'again.log')), runtime: 'runc' })
        .then(() => null, (e: unknown) => e);
      expect(errorKind(err)).toBe('Conflict');
      expect(fs.existsSync(`/proc/${pid}`), 'the running container was not killed').toBe(true);
      expect((await backend.state(id))?.status).toBe('running');
    } finally {
      await restarted.close();
      fs.renameSync(`${bundle}.aside`, bundle);
    }
  });

  it('delete leaves nothing under the exec root', async () => {
    const { id } = await create(['/bin/sh', '-c', 'sleep 100']);
    await backend.start(id);
    await backend.delete(id, { force: true });
    ids.splice(ids.indexOf(id), 1);
    expect(filesUnder(path.join(tmp, 'exec/oci')).filter((f) => f.includes(id))).toEqual([]);
    expect(processesMentioning(id)).toEqual([]);
    expect(cgroupsNamed(id)).toEqual([]);
    expect(await backend.state(id)).toBeNull();
    await backend.delete(id); // idempotent
  });
});
