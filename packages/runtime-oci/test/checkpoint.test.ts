/**
 * Checkpoint/restore of the OCI backend without root (checkpoint.ts): which runtime may
 * checkpoint (its own features document, CRIU only where the runtime needs it), the runtime's
 * checkpoint command line, and CRIU's log kept and named when a checkpoint or restore fails.
 * Runtimes here are small shell scripts that print a features document or record their argv;
 * `criu` a script that answers `check` when the test lets it.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { errorKind, ConflictError, type ExitInfo, type RuntimeCreateOptions } from '@berth/core';
import { OciRuntimeBackend } from '../src/backend.js';
import { CHECKPOINT_ANNOTATION, CRIU_ANNOTATION, checkpointArgs, checkpointContainer, exitWaiter, parseFeatures, restoreFailure } from '../src/checkpoint.js';
import type { ContainerMeta } from '../src/record.js';

let dir: string;
let savedPath: string | undefined;
let backend: OciRuntimeBackend | undefined;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-ckpt-'));
  savedPath = process.env.PATH;
});

afterEach(async () => {
  await backend?.close();
  backend = undefined;
  process.env.PATH = savedPath;
  fs.rmSync(dir, { recursive: true, force: true });
});

/** An executable shell script in the test's dir. */
function script(name: string, body: string): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return p;
}

/** A runtime whose `features` prints this document (and records every call's argv). */
function runtimeWithFeatures(name: string, annotations: Record<string, string> | null): string {
  const doc = JSON.stringify({ ociVersionMin: '1.0.0', ociVersionMax: '1.0.2', ...(annotations ? { annotations } : {}) });
  return script(name, `echo "$@" >> '${path.join(dir, `${name}.calls`)}'\n[ "$1" = features ] && echo '${doc}' && exit 0\nexit 1`);
}

/** PATH without criu: only the test's own bin dir (sh and echo are shell builtins or found by absolute path). */
function withoutCriu(): void {
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin, { recursive: true });
  process.env.PATH = bin;
}

/** A create that restores container c1 from `<dir>/ckpt` on `runtime`. */
function restoreOptions(runtime: string): RuntimeCreateOptions {
  return {
    id: 'c1',
    spec: { ociVersion: '1.0.2' },
    runtime,
    runtimeArgs: [],
    rootUid: 0,
    rootGid: 0,
    stdio: { tty: false, openStdin: false, stdinOnce: false },
    log: { path: path.join(dir, 'c1.log') },
    checkpoint: { path: path.join(dir, 'ckpt') },
  };
}

function meta(over: Partial<ContainerMeta> = {}): ContainerMeta {
  const bundle = path.join(dir, 'exec/oci/c1');
  fs.mkdirSync(bundle, { recursive: true });
  return {
    id: 'c1',
    runtime: 'rt',
    runtimePath: '/bin/false',
    globalArgs: [],
    bundle,
    tty: false,
    openStdin: false,
    log: { path: path.join(dir, 'data/containers/c1/c1-json.log') },
    k8sLog: path.join(dir, 'data/containers/c1/c1-json.log.k8s'),
    created: new Date().toISOString(),
    ...over,
  };
}

describe('a runtime\'s features document', () => {
  it('declares checkpoint with runc\'s annotation; CRIU is needed unless berth\'s annotation says "false"', () => {
    expect(parseFeatures(JSON.stringify({ annotations: { [CHECKPOINT_ANNOTATION]: 'true' } }))).toEqual({ declared: true, needsCriu: true });
    expect(parseFeatures(JSON.stringify({ annotations: { [CHECKPOINT_ANNOTATION]: 'true', [CRIU_ANNOTATION]: 'false' } }))).toEqual({ declared: true, needsCriu: false });
    expect(parseFeatures(JSON.stringify({ annotations: { [CHECKPOINT_ANNOTATION]: 'false' } })).declared).toBe(false);
    expect(parseFeatures(JSON.stringify({ ociVersionMin: '1.0.0' })).declared).toBe(false);
    expect(parseFeatures('No help topic for \'features\'').declared).toBe(false);
  });
});

describe('checkpoint capability per runtime', () => {
  it('the fake-like runtime can without CRIU; a runc-like one cannot where CRIU is missing; one without `features` cannot', async () => {
    const own = runtimeWithFeatures('own', { [CHECKPOINT_ANNOTATION]: 'true', [CRIU_ANNOTATION]: 'false' });
    const criuBased = runtimeWithFeatures('criubased', { [CHECKPOINT_ANNOTATION]: 'true' });
    const old = runtimeWithFeatures('old', null);
    withoutCriu();
    backend = new OciRuntimeBackend({
      execRoot: path.join(dir, 'exec'),
      runtimes: { own: { path: own }, criubased: { path: criuBased }, old: { path: old }, gone: { path: path.join(dir, 'nonexistent') } },
      defaultRuntime: 'criubased',
    });
    await backend.ready();
    expect(backend.features('own').checkpoint).toBe(true);
    expect(backend.features('criubased').checkpoint).toBe(false);
    expect(backend.features().checkpoint).toBe(false); // the default runtime's
    expect(backend.features('old').checkpoint).toBe(false);
    expect(backend.features('gone').checkpoint).toBe(false);
    expect(backend.features('not-a-runtime').checkpoint).toBe(false);
    expect(await backend.checkpointSupported('own')).toBe(true);
    expect(await backend.checkpointSupported('criubased')).toBe(false);
    // Other features do not depend on the runtime.
    expect(backend.features('old')).toMatchObject({ pause: true, exec: true, attach: true });
  });

  it('refuses a checkpoint or a restore on a runtime that cannot, with why, as InvalidParameter', async () => {
    const criuBased = runtimeWithFeatures('criubased', { [CHECKPOINT_ANNOTATION]: 'true' });
    const old = runtimeWithFeatures('old', null);
    withoutCriu();
    backend = new OciRuntimeBackend({ execRoot: path.join(dir, 'exec'), runtimes: { criubased: { path: criuBased }, old: { path: old } }, defaultRuntime: 'old' });
    const restore = (runtime: string): Promise<unknown> => backend!.create(restoreOptions(runtime)).then(() => null, (e: unknown) => e);
    const e1 = (await restore('criubased')) as Error;
    expect(errorKind(e1)).toBe('InvalidParameter');
    expect(e1.message).toBe('checkpoint is not supported by runtime criubased: criu is not installed (not found on PATH)');
    const e2 = (await restore('old')) as Error;
    expect(errorKind(e2)).toBe('InvalidParameter');
    expect(e2.message).toMatch(/^checkpoint is not supported by runtime old: .*does not declare org\.opencontainers\.runc\.checkpoint\.enabled/);
    // Refused before anything was made.
    expect(fs.readdirSync(path.join(dir, 'exec/oci')).sort()).toEqual(['exits', 's', 'state']);
  });

  it('reads the features document with the binary alone: a configured runtime argument (--log) sees no call', async () => {
    const own = runtimeWithFeatures('own', { [CHECKPOINT_ANNOTATION]: 'true', [CRIU_ANNOTATION]: 'false' });
    backend = new OciRuntimeBackend({ execRoot: path.join(dir, 'exec'), runtimes: { own: { path: own, runtimeArgs: ['--log', '/x'] } }, defaultRuntime: 'own' });
    await backend.ready();
    expect(fs.readFileSync(path.join(dir, 'own.calls'), 'utf8')).toBe('features\n');
  });
});

describe('the runtime\'s checkpoint command line', () => {
  it('is containerd\'s runc shim\'s: image path, work path, --leave-running when the container stays, the ID last', () => {
    expect(checkpointArgs('c1', { imagePath: '/d/c/checkpoints/cp1', workPath: '/run/b/criu-work', leaveRunning: false })).toEqual([
      'checkpoint', '--image-path', '/d/c/checkpoints/cp1', '--work-path', '/run/b/criu-work', 'c1',
    ]);
    expect(checkpointArgs('c1', { imagePath: '/i', workPath: '/w', leaveRunning: true })).toEqual(['checkpoint', '--image-path', '/i', '--work-path', '/w', '--leave-running', 'c1']);
  });

  it('runs it with the runtime\'s global arguments; the work dir is gone after a success', async () => {
    const calls = path.join(dir, 'argv');
    const rt = script('rt', `echo "$@" > '${calls}'`);
    const m = meta({ runtimePath: rt });
    await checkpointContainer({ name: 'rt', path: rt, globalArgs: ['--root', '/r'] }, m, { path: path.join(dir, 'img'), exit: false });
    expect(fs.readFileSync(calls, 'utf8').trim()).toBe(`--root /r checkpoint --image-path ${path.join(dir, 'img')} --work-path ${path.join(m.bundle, 'criu-work')} --leave-running c1`);
    expect(fs.existsSync(path.join(m.bundle, 'criu-work'))).toBe(false);
  });
});

describe('a checkpoint that stops the container waits for its exit', () => {
  it('resolves at the container\'s own exit, not an exec\'s or another container\'s; cancel stops listening', async () => {
    const listeners = new Set<(e: ExitInfo) => void>();
    const emit = (e: Partial<ExitInfo>): void => {
      for (const l of listeners) l({ id: 'c1', exitCode: 137, oomKilled: false, exitedAt: new Date().toISOString(), ...e });
    };
    const host = { onExit: (l: (e: ExitInfo) => void) => (listeners.add(l), () => listeners.delete(l)) };
    const w = exitWaiter(host, 'c1', () => {});
    let done = false;
    void w.done.then(() => (done = true));
    emit({ execId: 'e1' });
    emit({ id: 'c2' });
    await new Promise((r) => setImmediate(r));
    expect(done).toBe(false);
    emit({});
    await new Promise((r) => setImmediate(r));
    expect(done).toBe(true);
    w.cancel();
    expect(listeners.size).toBe(0);
  });
});

describe('CRIU\'s failures name its log', () => {
  it('a failed checkpoint: System error naming <container dir>/criu-dump.log, which holds CRIU\'s dump.log', async () => {
    // As runc: CRIU wrote dump.log into the work path, runc says "criu failed".
    const rt = script(
      'rt',
      `while [ $# -gt 0 ]; do [ "$1" = --work-path ] && w=$2; shift; done
echo "(00.001) Error (criu/sk-inet.c:191): inet: Connected TCP socket, consider using --tcp-established option." > "$w/dump.log"
echo 'time="2026-01-01T00:00:00Z" level=error msg="criu failed: type NOTIFY errno 0"' >&2
exit 1`,
    );
    const m = meta({ runtimePath: rt });
    const err = await checkpointContainer({ name: 'rt', path: rt, globalArgs: [] }, m, { path: path.join(dir, 'img'), exit: true }).then(
      () => null,
      (e: unknown) => e as Error,
    );
    const kept = path.join(dir, 'data/containers/c1/criu-dump.log');
    expect(errorKind(err)).toBe('System');
    expect(err!.message).toBe(`checkpoint of container c1 failed: rt checkpoint c1: criu failed: type NOTIFY errno 0; CRIU log: ${kept}`);
    expect(fs.readFileSync(kept, 'utf8')).toMatch(/Connected TCP socket/);
    expect(fs.existsSync(path.join(m.bundle, 'criu-work'))).toBe(false);
  });

  it('a runtime that wrote no log: the error says what the runtime said, naming no log', async () => {
    const rt = script('rt', `echo 'time="x" level=error msg="checkpoint failed: out of space"' >&2; exit 1`);
    const err = await checkpointContainer({ name: 'rt', path: rt, globalArgs: [] }, meta({ runtimePath: rt }), { path: path.join(dir, 'img'), exit: true }).then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(errorKind(err)).toBe('System');
    expect(err!.message).toBe('checkpoint of container c1 failed: rt checkpoint c1: checkpoint failed: out of space');
  });

  it('a container the runtime finds not running stays a Conflict (not CRIU\'s failure)', async () => {
    const rt = script('rt', `echo 'time="x" level=error msg="container is not running"' >&2; exit 1`);
    const err = await checkpointContainer({ name: 'rt', path: rt, globalArgs: [] }, meta({ runtimePath: rt }), { path: path.join(dir, 'img'), exit: true }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(errorKind(err)).toBe('Conflict');
  });

  it('a failed restore keeps the bundle\'s restore.log as <container dir>/criu-restore.log and names it', () => {
    const m = meta();
    fs.writeFileSync(path.join(m.bundle, 'restore.log'), '(00.002) Error (criu/cr-restore.c:1000): Can\'t restore\n');
    const err = restoreFailure(m, '/d/ckpt', new ConflictError('conmon said no'));
    const kept = path.join(dir, 'data/containers/c1/criu-restore.log');
    expect(errorKind(err)).toBe('System');
    expect(err.message).toBe(`restore of container c1 from /d/ckpt failed: conmon said no; CRIU log: ${kept}`);
    fs.rmSync(m.bundle, { recursive: true }); // what the failed create's cleanup does next
    expect(fs.readFileSync(kept, 'utf8')).toMatch(/Can't restore/);
  });
});

/** A `criu` that logs `started`, then waits for `<dir>/release` (up to ~8 s, under the probe's 10 s limit). */
function fakeCriu(exitCode: number): void {
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  const log = path.join(dir, 'criu.log');
  fs.writeFileSync(
    path.join(bin, 'criu'),
    `#!/bin/sh
[ "$1" = check ] || exit 2
echo started >> '${log}'
i=0
while [ ! -e '${path.join(dir, 'release')}' ]; do
  i=$((i+1)); if [ $i -gt 400 ]; then echo 'gave up' >> '${log}'; exit 1; fi
  sleep 0.02
done
echo released >> '${log}'
[ ${exitCode} = 0 ] || { echo 'Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds' >&2; echo 'Error (criu/crtools.c:260): Could not initialize kernel features detection.' >&2; }
exit ${exitCode}
`,
    { mode: 0o755 },
  );
  process.env.PATH = `${bin}:${savedPath ?? ''}`;
}

function criuLog(): string[] {
  try {
    return fs.readFileSync(path.join(dir, 'criu.log'), 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

/** Resolves once `test` is true, checked on a timer (the event loop must be free for that). */
function onTimer(test: () => boolean, then: () => void = () => {}): Promise<void> {
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      if (!test()) return;
      clearInterval(timer);
      then();
      resolve();
    }, 5);
  });
}

function makeBackend(): OciRuntimeBackend {
  const runc = path.join(dir, 'runc');
  fs.writeFileSync(runc, `#!/bin/sh\n[ "$1" = features ] && echo '{"annotations":{"org.opencontainers.runc.checkpoint.enabled":"true"}}'\n`, { mode: 0o755 });
  return new OciRuntimeBackend({ execRoot: path.join(dir, 'exec'), runtimes: { runc: { path: runc } }, defaultRuntime: 'runc' });
}

/*
 * The CRIU probe must not block the daemon: `criu check` can take seconds, and while it runs
 * every timer and request of the event loop must go on. A fake `criu` on PATH waits until a
 * timer of this test has run; a synchronous probe would never let that timer run. The runtime
 * here declares checkpoint through CRIU in its features document (as runc does), so that
 * its checkpoint capability is CRIU's answer.
 */
describe('the CRIU probe', () => {
  it('runs `criu check` without blocking the event loop', async () => {
    fakeCriu(0);
    backend = makeBackend();
    // Answered later: checkpoint is "no" until then.
    expect(backend.features().checkpoint).toBe(false);
    // This timer releases criu while it runs: it can only fire if the probe leaves the loop free.
    await onTimer(() => criuLog().includes('started'), () => fs.writeFileSync(path.join(dir, 'release'), ''));
    await onTimer(() => criuLog().length >= 2);
    expect(criuLog()).toEqual(['started', 'released']);
    expect(await backend.checkpointSupported()).toBe(true);
    expect(backend.features().checkpoint).toBe(true);
  }, 30_000); // a blocking probe waits for its criu to give up (~8 s) before this test can fail

  it('says no when `criu check` fails', async () => {
    fakeCriu(1);
    backend = makeBackend();
    await onTimer(() => criuLog().includes('started'), () => fs.writeFileSync(path.join(dir, 'release'), ''));
    expect(await backend.checkpointSupported()).toBe(false);
    expect(backend.features().checkpoint).toBe(false);
    expect(criuLog()).toEqual(['started', 'released']);
    // A restore on it is refused with why: criu's first complaint.
    const err = await backend.create(restoreOptions('runc')).then(() => null, (e: unknown) => e as Error);
    expect(err?.message).toBe('checkpoint is not supported by runtime runc: `criu check` fails: Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds');
  });

  it('says no without criu on PATH', async () => {
    process.env.PATH = path.join(dir, 'nothing-here');
    backend = makeBackend();
    expect(await backend.checkpointSupported()).toBe(false);
    expect(criuLog()).toEqual([]);
  });
});
