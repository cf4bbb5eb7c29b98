/**
 * Checkpoint/restore through the OCI backend and conmon, with two real runtimes: the
 * repository's fake OCI runtime CLI (test/fixtures/fake-oci-runtime: checkpoints without CRIU,
 * its features document says so) and runc + CRIU (runs only where `criu check` passes; it
 * fails on this dev machine's kernel: "vdso: Unexpected rt vDSO area bounds").
 * Checked: the runtime's command lines (checkpoint as containerd's shim runs it, restore as
 * conmon runs it), the checkpoint dir's content, the exit (137) of a checkpoint that stops the
 * container, --leave-running, a restore on a new create that is running and monitored like a
 * created container (logs, attach, kill, exit), and CRIU's log named when a checkpoint or restore fails.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { errorKind, readLogs, type ExitInfo, type RuntimeCreateOptions } from '@berth/core';
import { OciRuntimeBackend, buildRuntimes } from '@berth/runtime-oci';
import { busyboxSpec, criuSkipReason, FAKE_RUNTIME, fakeRuntimeCalls, newId, ociBackendTeardown, processesMentioning, runtimeSkipReason, Sink, testRootfs } from './runtime-helpers.js';

const skip = runtimeSkipReason();
if (skip) console.warn(`runtime-checkpoint e2e skipped: ${skip}`);

describe.skipIf(skip !== null)(`checkpoint/restore through the OCI backend${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let tmp: string;
  let argLog: string;
  let backend: OciRuntimeBackend;
  const ids: string[] = [];
  const exits = new Map<string, ExitInfo>();

  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-ckpt-'));
    argLog = path.join(tmp, 'fake-argv.log');
    const { runtimes } = buildRuntimes({ daemonJson: { fake: { path: FAKE_RUNTIME, runtimeArgs: ['--log', argLog] } } });
    backend = new OciRuntimeBackend({ execRoot: path.join(tmp, 'exec'), runtimes, defaultRuntime: 'fake' });
    backend.onExit((e) => {
      if (!e.execId) exits.set(e.id, e);
    });
  });
  ociBackendTeardown({ afterEach, afterAll }, () => ({ backend, tmp }), ids);

  async function waitExit(id: string): Promise<ExitInfo> {
    await until(async () => exits.has(id));
    return exits.get(id)!;
  }

  function options(id: string, args: string[], o: { runtime?: string; env?: string[]; checkpoint?: string } = {}): RuntimeCreateOptions {
    const runtime = o.runtime ?? 'fake';
    return {
      id,
      spec: busyboxSpec(testRootfs(), id, args, { env: o.env }),
      runtime,
      runtimeArgs: [...(backend.runtimes().find((r) => r.name === runtime)?.runtimeArgs ?? [])],
      rootUid: 0,
      rootGid: 0,
      stdio: { tty: false, openStdin: false, stdinOnce: false },
      log: { path: path.join(tmp, 'data/containers', id, `${id}-json.log`) },
      ...(o.checkpoint ? { checkpoint: { path: o.checkpoint } } : {}),
    };
  }

  /** A running container whose process prints whether it was restored, then ticks; `$0` is its ID (processesMentioning finds it). */
  async function running(o: { runtime?: string; env?: string[] } = {}): Promise<string> {
    const id = newId();
    ids.push(id);
    await backend.create(options(id, ['/bin/sh', '-c', 'echo "up restored=${FAKE_OCI_RESTORED:-0}"; i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 0.1; done', id], o));
    await backend.start(id);
    await until(async () => (await logsOf(id)).includes('stdout:up restored=0\n'));
    return id;
  }

  async function logsOf(id: string): Promise<string[]> {
    const out: string[] = [];
    const file = path.join(tmp, 'data/containers', id, `${id}-json.log`);
    if (!fs.existsSync(file)) return out;
    for await (const m of readLogs(file)) out.push(`${m.stream}:${m.line.toString()}`);
    return out;
  }

  async function until(test: () => Promise<boolean>, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!(await test())) {
      if (Date.now() > deadline) throw new Error('condition not met in time');
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** The fake runtime's recorded invocations of one verb for one container (the verb and its arguments). */
  function invocations(verb: string, id: string): string[][] {
    return fakeRuntimeCalls(argLog)
      .filter((c) => c.verb === verb && c.args[c.args.length - 1] === id)
      .map((c) => [c.verb, ...c.args]);
  }

  it('the fake runtime declares checkpoint without CRIU (its features document); an unknown runtime has none', async () => {
    await backend.ready();
    expect(backend.features('fake').checkpoint).toBe(true);
    expect(backend.features().checkpoint).toBe(true); // the default runtime: fake
    expect(backend.features('nope').checkpoint).toBe(false);
  });

  it('checkpoint (exit): the container exits 137, the dir holds its process; a restore on a new create runs it again, monitored', async () => {
    const id = await running();
    const bundle = path.join(tmp, 'exec/oci', id);
    const ckpt = path.join(tmp, 'data/containers', id, 'checkpoints', 'cp1');
    await backend.checkpoint(id, { path: ckpt, exit: true });
    // Reported before checkpoint() resolved: CRIU (here the fake) SIGKILLs it, as dockerd shows "Exited (137)".
    expect(exits.get(id)?.exitCode).toBe(137);
    expect((await backend.state(id))?.status).toBe('stopped');
    const saved = JSON.parse(fs.readFileSync(path.join(ckpt, 'fake-checkpoint.json'), 'utf8')) as { process: { args: string[] } };
    expect(saved.process.args).toEqual(['/bin/sh', '-c', expect.stringContaining('up restored='), id]);
    // The runtime's command line: containerd's runc shim's (work path in the bundle, removed after).
    expect(invocations('checkpoint', id)).toEqual([['checkpoint', '--image-path', ckpt, '--work-path', path.join(bundle, 'criu-work'), id]]);
    expect(fs.existsSync(path.join(bundle, 'criu-work'))).toBe(false);

    await backend.delete(id);
    exits.delete(id);
    // A new create from the checkpoint: its own spec says `exit 99`, the checkpointed process runs.
    const { pid } = await backend.create(options(id, ['/bin/sh', '-c', 'exit 99'], { checkpoint: ckpt }));
    expect(pid).toBeGreaterThan(0);
    expect((await backend.state(id))?.status).toBe('running'); // running once create returns
    await backend.start(id); // only checks that it runs
    // conmon's restore mode ran the runtime's restore (conmon's flags: bundle as CRIU's work path).
    expect(invocations('restore', id)).toEqual([
      ['restore', '--bundle', bundle, '--pid-file', path.join(bundle, 'pidfile'), '--detach', '--image-path', ckpt, '--work-path', bundle, id],
    ]);
    // Monitored like a created container: its output reaches the log and an attach, its exit is reported.
    await until(async () => (await logsOf(id)).includes('stdout:up restored=1\n'));
    const out = new Sink();
    const session = await backend.attach(id, { stdout: out as unknown as NodeJS.WritableStream });
    await out.waitFor(/tick \d+\n/);
    session.detach();
    await backend.kill(id, 9);
    expect((await waitExit(id)).exitCode).toBe(137);
    await backend.delete(id);
    expect(processesMentioning(id)).toEqual([]);
  });

  it('--leave-running (exit=false): the container keeps running after its checkpoint', async () => {
    const id = await running();
    const ckpt = path.join(tmp, 'ckpt-leave', id);
    await backend.checkpoint(id, { path: ckpt, exit: false });
    expect(invocations('checkpoint', id)[0]).toContain('--leave-running');
    expect(fs.existsSync(path.join(ckpt, 'fake-checkpoint.json'))).toBe(true);
    expect((await backend.state(id))?.status).toBe('running');
    expect(exits.has(id)).toBe(false);
    await backend.kill(id, 15);
    expect((await waitExit(id)).exitCode).toBe(143);
  });

  it('a failing checkpoint is a System error naming CRIU\'s log; the container keeps running', async () => {
    const id = await running({ env: ['FAKE_OCI_CHECKPOINT_FAIL=Connected TCP socket, consider using --tcp-established'] });
    const err = await backend.checkpoint(id, { path: path.join(tmp, 'ckpt-fail', id), exit: true }).then(
      () => null,
      (e: unknown) => e as Error,
    );
    const kept = path.join(tmp, 'data/containers', id, 'criu-dump.log');
    expect(errorKind(err)).toBe('System');
    expect(err!.message).toContain('Connected TCP socket');
    expect(err!.message).toContain(`CRIU log: ${kept}`);
    expect(fs.readFileSync(kept, 'utf8')).toMatch(/Error: Connected TCP socket/);
    expect((await backend.state(id))?.status).toBe('running');
  });

  it('a failing restore is a System error naming CRIU\'s restore log; nothing of the container is left', async () => {
    const id = newId();
    ids.push(id);
    const empty = path.join(tmp, 'ckpt-empty');
    fs.mkdirSync(empty, { recursive: true });
    const err = await backend.create(options(id, ['/bin/true'], { checkpoint: empty })).then(
      () => null,
      (e: unknown) => e as Error,
    );
    const kept = path.join(tmp, 'data/containers', id, 'criu-restore.log');
    expect(errorKind(err)).toBe('System');
    expect(err!.message).toContain(`restore of container ${id} from ${empty} failed`);
    expect(err!.message).toContain(`CRIU log: ${kept}`);
    expect(fs.readFileSync(kept, 'utf8')).toMatch(/no checkpoint/);
    expect(fs.existsSync(path.join(tmp, 'exec/oci', id))).toBe(false);
    expect(await backend.state(id)).toBeNull();
  });

  it('runc + CRIU: checkpoints a running container and restores it where `criu check` passes', async (ctx) => {
    const why = criuSkipReason();
    if (why) ctx.skip(why);
    const runc = new OciRuntimeBackend({ execRoot: path.join(tmp, 'exec-runc'), runtimes: { runc: { path: 'runc' } }, defaultRuntime: 'runc' });
    const id = newId();
    const runcExits = new Map<string, (e: ExitInfo) => void>();
    runc.onExit((e) => !e.execId && runcExits.get(e.id)?.(e));
    const exited = (): Promise<ExitInfo> => new Promise((resolve) => runcExits.set(id, resolve));
    const log = path.join(tmp, 'data/containers', id, `${id}-json.log`);
    const create = (args: string[], checkpoint?: string): RuntimeCreateOptions => ({
      ...options(id, args, { runtime: 'runc' }),
      runtimeArgs: [],
      ...(checkpoint ? { checkpoint: { path: checkpoint } } : {}),
    });
    try {
      expect(await runc.checkpointSupported('runc')).toBe(true);
      await runc.create(create(['/bin/sh', '-c', 'i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 0.1; done']));
      await runc.start(id);
      await until(async () => (await logsOf(id)).length >= 3);
      const ckpt = path.join(tmp, 'ckpt-runc', id);
      const first = exited();
      await runc.checkpoint(id, { path: ckpt, exit: true });
      expect((await first).exitCode).toBe(137);
      const before = (await logsOf(id)).length;
      await runc.delete(id, { force: true });
      await runc.create(create(['/bin/sh', '-c', 'exit 99'], ckpt));
      await runc.start(id);
      expect((await runc.state(id))?.status).toBe('running');
      await until(async () => (await logsOf(id)).length > before + 1);
      const lines = await logsOf(id);
      // The counter goes on from where it was (the restored process, not the new spec's).
      const lastBefore = Number(/tick (\d+)/.exec(lines[before - 1]!)![1]);
      expect(Number(/tick (\d+)/.exec(lines[before]!)![1])).toBe(lastBefore + 1);
      const second = exited();
      await runc.kill(id, 9);
      expect((await second).exitCode).toBe(137);
      expect(fs.existsSync(log)).toBe(true);
    } finally {
      await runc.delete(id, { force: true }).catch(() => undefined);
      await runc.close();
    }
  });
});
