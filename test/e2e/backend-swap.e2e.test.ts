/**
 * One scenario, two runtime backends: the same steps through the real docker CLI against a
 * real berthd built with the OCI backend (runc + conmon, the default build) and with the
 * containerd backend (`"plugins": {"backend": "runtime-containerd"}` in daemon.json — the
 * build file alone, no code): run, a missing entrypoint (127), an OOM kill (137, OOMKilled),
 * stdin (run -i, exec -i), logs (stdout and stderr apart), exec with its exit code, a live
 * restore across a berthd restart (a running container keeps its pid, what it wrote meanwhile
 * is logged, its exec works; a container and an exec that ended while berthd was down report
 * their real exit codes), stop (the TERM trap runs, its output is logged), rm (nothing left in
 * the backend). For containerd only, a last test restarts containerd under a running container.
 *
 * The containerd case starts its own containerd (temp root, state and socket; a config that
 * leaves out the CRI plugin and the snapshotters it does not need) and kills it, its shims
 * and its directories afterwards, even when a step fails. Skips: berthdSkipReason(), or
 * containerd / its runc shim not installed (scripts/install-deps.sh installs them).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, berthdSkipReason, startBerthd, which, type Berthd } from './helpers/berthd.js';

interface Backend {
  /** The plugin the build loads (daemon.json plugins.backend). */
  plugin: string;
  /** Where the backend keeps a container's files under the exec root. */
  execDir: string;
  skip(): string | null;
  /** Set up what the backend needs; the berthd flags that select it. */
  setup(): Promise<string[]>;
  teardown(): Promise<void>;
  /** Container IDs the backend itself still holds (beyond berth's records). */
  held(): string[];
}

// ---------------------------------------------------------------- containerd of the test's own

let ctdDir = '';
let ctd: ChildProcess | null = null;
const ctdSocket = (): string => path.join(ctdDir, 'containerd.sock');
const NAMESPACE = 'berth';

function ctr(args: string[]): string {
  return execFileSync('ctr', ['--address', ctdSocket(), '--namespace', NAMESPACE, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

async function startContainerd(): Promise<void> {
  ctdDir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-ctd-'));
  const config = [
    'version = 2',
    `root = ${JSON.stringify(path.join(ctdDir, 'root'))}`,
    `state = ${JSON.stringify(path.join(ctdDir, 'state'))}`,
    // berth mounts the root filesystems and runs no Kubernetes: no CRI, no snapshotters beyond the default.
    'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]',
    '[grpc]',
    `  address = ${JSON.stringify(ctdSocket())}`,
    '[ttrpc]',
    `  address = ${JSON.stringify(`${ctdSocket()}.ttrpc`)}`,
    '[debug]',
    '  address = ""',
    '[metrics]',
    '  address = ""',
  ].join('\n');
  fs.writeFileSync(path.join(ctdDir, 'config.toml'), `${config}\n`);
  await spawnContainerd();
}

/** containerd on the config of startContainerd(); resolves once it answers. */
async function spawnContainerd(): Promise<void> {
  const log = fs.openSync(path.join(ctdDir, 'containerd.log'), 'a');
  ctd = spawn('containerd', ['--config', path.join(ctdDir, 'config.toml')], { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  for (let i = 0; ; i++) {
    if (ctd.exitCode !== null) throw new Error(`containerd exited with ${ctd.exitCode}:\n${fs.readFileSync(path.join(ctdDir, 'containerd.log'), 'utf8')}`);
    try {
      if (fs.existsSync(ctdSocket())) {
        execFileSync('ctr', ['--address', ctdSocket(), 'version'], { stdio: 'ignore', timeout: 5000 });
        return;
      }
    } catch {
      /* not yet */
    }
    if (i > 300) throw new Error('containerd did not answer within 30 s');
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Kill what the test's containerd left (shims, their containers), containerd itself, its dirs. */
/** containerd itself goes away (SIGTERM) and comes back; its shims and containers stay. */
async function restartContainerd(): Promise<void> {
  const old = ctd!;
  const exited = new Promise((r) => old.once('exit', r));
  old.kill('SIGTERM');
  await exited;
  await spawnContainerd();
}

async function stopContainerd(): Promise<void> {
  if (!ctdDir) return;
  if (fs.existsSync(ctdSocket())) {
    try {
      for (const id of ctr(['tasks', 'ls', '-q']).split('\n').filter(Boolean)) {
        try {
          ctr(['tasks', 'kill', '-a', '-s', 'SIGKILL', id]);
        } catch {
          /* gone */
        }
        try {
          ctr(['tasks', 'delete', '-f', id]);
        } catch {
          /* gone */
        }
      }
      for (const id of ctr(['containers', 'ls', '-q']).split('\n').filter(Boolean)) ctr(['containers', 'delete', id]);
    } catch {
      /* containerd is gone: the shims are killed below */
    }
  }
  // Shims outlive containerd; each names our socket on its command line.
  try {
    for (const pid of execFileSync('pgrep', ['-f', ctdDir], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number)) {
      if (pid !== process.pid && pid !== ctd?.pid) process.kill(pid, 'SIGKILL');
    }
  } catch {
    /* none */
  }
  if (ctd && ctd.exitCode === null && ctd.signalCode === null) {
    const exited = new Promise((r) => ctd!.once('exit', r));
    ctd.kill('SIGTERM');
    const t = setTimeout(() => ctd?.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
  }
  ctd = null;
  fs.rmSync(ctdDir, { recursive: true, force: true });
  ctdDir = '';
}

function containerdSkipReason(): string | null {
  if (!which('containerd')) return 'containerd is not installed (apt-get install containerd)';
  if (!which('containerd-shim-runc-v2')) return 'containerd-shim-runc-v2 is not installed (Debian package containerd)';
  if (!which('ctr')) return 'ctr is not installed (Debian package containerd)';
  return null;
}

// ---------------------------------------------------------------- the two backends

let buildFileDir = '';
const BACKENDS: Backend[] = [
  {
    plugin: 'runtime-oci',
    execDir: 'oci',
    skip: () => null,
    setup: async () => ['--live-restore'],
    teardown: async () => undefined,
    held: () => [],
  },
  {
    plugin: 'runtime-containerd',
    execDir: 'containerd',
    skip: containerdSkipReason,
    async setup() {
      await startContainerd();
      buildFileDir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-swap-build-'));
      const file = path.join(buildFileDir, 'daemon.json');
      const build = { plugins: { backend: 'runtime-containerd', config: { 'runtime-containerd': { address: ctdSocket(), namespace: NAMESPACE } } } };
      fs.writeFileSync(file, JSON.stringify(build, null, 2));
      return ['--live-restore', '--config-file', file];
    },
    async teardown() {
      await stopContainerd();
      if (buildFileDir) fs.rmSync(buildFileDir, { recursive: true, force: true });
      buildFileDir = '';
    },
    held: () => ctr(['containers', 'ls', '-q']).split('\n').filter(Boolean),
  },
];

// Writes "while-down" once /sig/go exists (the test makes it while no berthd runs).
const LONG = ['sh', '-c', 'echo up; echo oops >&2; trap "echo bye; exit 143" TERM; while [ ! -e /sig/go ]; do sleep 0.1; done; echo while-down; while true; do sleep 0.1; done'];

interface Inspect {
  Id: string;
  State: { Status: string; Running: boolean; Pid: number; ExitCode: number };
}

describe.each(BACKENDS)('backend swap: $plugin', (backend) => {
  const skip = berthdSkipReason() ?? backend.skip();
  let d: Berthd | null = null;
  let args: string[] = [];
  // berthd's dir, kept across its restart (startBerthd removes only a dir it made itself).
  let dir = '';

  beforeAll(async () => {
    if (skip) return;
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bd-swap-'));
    args = await backend.setup();
  }, 60_000);

  afterAll(async () => {
    if (skip) return;
    try {
      if (d) {
        await d.docker(['rm', '-f', 'swap-long', 'swap-short', 'swap-oom', 'swap-ctd']).catch(() => undefined);
        await d.cleanup();
      }
    } finally {
      await backend.teardown();
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it.skipIf(skip !== null)(`run, logs, exec, live restore, stop, rm${skip ? ` (skipped: ${skip})` : ''}`, async () => {
    d = await startBerthd({ dir, args });
    await d.loadTestImage();

    // The build has the chosen backend, and only it.
    const info = JSON.parse((await d.api('GET', '/info')).body) as { DefaultRuntime: string; BerthPlugins: { Name: string; Type: string; Status: string }[] };
    const runtimes = info.BerthPlugins.filter((p) => p.Type === 'io.berth.runtime.v1');
    expect(runtimes.map((p) => [p.Name, p.Status])).toEqual([[backend.plugin, 'loaded']]);
    expect(info.DefaultRuntime).toBe('runc');

    // run: attached output and the exit code.
    const run = await d.docker(['run', '--rm', TEST_IMAGE, 'sh', '-c', 'echo hello; exit 7']);
    expect([run.code, run.stdout]).toEqual([7, 'hello\n']);

    // An entrypoint that is not there: dockerd's 127, and nothing left in the backend.
    const missing = await d.docker(['run', '--rm', TEST_IMAGE, 'no-such-command']);
    expect(missing.code, missing.stderr).toBe(127);
    expect(missing.stderr).toContain('executable file not found');
    expect(backend.held()).toEqual([]);

    // OOM: the kernel kills the process at its memory limit, and inspect says so.
    const oom = await d.docker(['run', '--name', 'swap-oom', '-m', '16m', '--memory-swap', '16m', TEST_IMAGE, 'sh', '-c', 'x=aaaaaaaa; while true; do x=$x$x; done']);
    expect(oom.code).toBe(137);
    const oomState = JSON.parse((await d.docker(['inspect', 'swap-oom'])).stdout)[0] as { State: { OOMKilled: boolean } };
    expect(oomState.State.OOMKilled).toBe(true);
    expect((await d.docker(['rm', 'swap-oom'])).code).toBe(0);

    // stdin: the client's input reaches the process, and its end ends the process's input.
    const cat = await d.docker(['run', '-i', '--rm', TEST_IMAGE, 'cat'], { input: 'piped in\n' });
    expect([cat.code, cat.stdout]).toEqual([0, 'piped in\n']);

    // logs: stdout and stderr apart.
    const sig = path.join(dir, 'sig');
    fs.mkdirSync(sig);
    const started = await d.docker(['run', '-d', '--name', 'swap-long', '-v', `${sig}:/sig`, TEST_IMAGE, ...LONG]);
    expect(started.code, started.stderr).toBe(0);
    const id = started.stdout.trim();
    for (let i = 0; i < 100 && !(await d.docker(['logs', 'swap-long'])).stderr.includes('oops'); i++) await new Promise((r) => setTimeout(r, 100));
    const logs = await d.docker(['logs', 'swap-long']);
    expect([logs.stdout, logs.stderr]).toEqual(['up\n', 'oops\n']);

    // exec: output and exit code.
    const ex = await d.docker(['exec', 'swap-long', 'sh', '-c', 'echo in-exec; echo exec-err >&2; exit 3']);
    expect([ex.code, ex.stdout, ex.stderr]).toEqual([3, 'in-exec\n', 'exec-err\n']);

    const exIn = await d.docker(['exec', '-i', 'swap-long', 'cat'], { input: 'exec input\n' });
    expect([exIn.code, exIn.stdout]).toEqual([0, 'exec input\n']);

    // live restore: berthd goes away; one container keeps running (and writes), one exits meanwhile.
    const short = await d.docker(['run', '-d', '--name', 'swap-short', TEST_IMAGE, 'sh', '-c', 'sleep 1; exit 42']);
    expect(short.code, short.stderr).toBe(0);
    // An exec that ends while berthd is down keeps its real exit code.
    const execCreated = await d.api('POST', '/containers/swap-long/exec', { Cmd: ['sh', '-c', 'sleep 1; exit 5'] });
    expect(execCreated.status, execCreated.body).toBe(201);
    const execId = (JSON.parse(execCreated.body) as { Id: string }).Id;
    expect((await d.api('POST', `/exec/${execId}/start`, { Detach: true })).status).toBe(200);
    const before = JSON.parse((await d.docker(['inspect', 'swap-long'])).stdout)[0] as Inspect;
    expect(before.State.Running).toBe(true);
    expect(await d.stop('SIGTERM')).toBe(0);
    // The container's process outlives the daemon.
    expect(() => process.kill(before.State.Pid, 0)).not.toThrow();
    fs.writeFileSync(path.join(sig, 'go'), '');
    await new Promise((r) => setTimeout(r, 2500)); // swap-short exits and swap-long writes while no berthd runs
    d = await startBerthd({ dir, args });

    const long = JSON.parse((await d.docker(['inspect', 'swap-long'])).stdout)[0] as Inspect;
    expect([long.State.Status, long.State.Pid]).toEqual(['running', before.State.Pid]);
    const shortState = JSON.parse((await d.docker(['inspect', 'swap-short'])).stdout)[0] as Inspect;
    expect([shortState.State.Status, shortState.State.ExitCode]).toEqual(['exited', 42]);
    const execAfter = JSON.parse((await d.api('GET', `/exec/${execId}/json`)).body) as { Running: boolean; ExitCode: number };
    expect([execAfter.Running, execAfter.ExitCode]).toEqual([false, 5]);
    const ex2 = await d.docker(['exec', 'swap-long', 'echo', 'after-restart']);
    expect([ex2.code, ex2.stdout]).toEqual([0, 'after-restart\n']);

    // stop: the TERM trap runs and its output is in the log.
    const stop = await d.docker(['stop', 'swap-long']);
    expect(stop.code, stop.stderr).toBe(0);
    const stopped = JSON.parse((await d.docker(['inspect', 'swap-long'])).stdout)[0] as Inspect;
    expect([stopped.State.Status, stopped.State.ExitCode]).toEqual(['exited', 143]);
    const logs2 = await d.docker(['logs', 'swap-long']);
    // What swap-long wrote while berthd was down is in its log too.
    expect([logs2.stdout, logs2.stderr]).toEqual(['up\nwhile-down\nbye\n', 'oops\n']);

    // rm: gone from berth and from the backend.
    const rm = await d.docker(['rm', 'swap-long', 'swap-short']);
    expect(rm.code, rm.stderr).toBe(0);
    expect((await d.docker(['ps', '-aq'])).stdout).toBe('');
    expect(fs.existsSync(path.join(d.execRoot, backend.execDir, id))).toBe(false);
    expect(backend.held()).toEqual([]);
  }, 180_000);

  // containerd only: its own restart under a running container (the shim keeps it running).
  const ctdSkip = skip ?? (backend.plugin === 'runtime-containerd' ? null : `only the containerd backend has a containerd to restart (this is ${backend.plugin})`);
  it.skipIf(ctdSkip !== null)(`containerd restarts: berthd follows the container again (exec, stop, exit code, logs)${ctdSkip ? ` (skipped: ${ctdSkip})` : ''}`, async () => {
    if (!d) d = await startBerthd({ dir, args });
    const started = await d.docker(['run', '-d', '--name', 'swap-ctd', TEST_IMAGE, 'sh', '-c', 'trap "echo bye; exit 143" TERM; while true; do sleep 0.1; done']);
    expect(started.code, started.stderr).toBe(0);
    await restartContainerd();
    let ex = await d.docker(['exec', 'swap-ctd', 'echo', 'back']);
    for (let i = 0; i < 100 && ex.code !== 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      ex = await d.docker(['exec', 'swap-ctd', 'echo', 'back']);
    }
    expect([ex.code, ex.stdout]).toEqual([0, 'back\n']);
    const stop = await d.docker(['stop', 'swap-ctd']);
    expect(stop.code, stop.stderr).toBe(0);
    const st = JSON.parse((await d.docker(['inspect', 'swap-ctd'])).stdout)[0] as Inspect;
    expect([st.State.Status, st.State.ExitCode]).toEqual(['exited', 143]);
    expect((await d.docker(['logs', 'swap-ctd'])).stdout).toBe('bye\n');
    expect((await d.docker(['rm', 'swap-ctd'])).code).toBe(0);
    expect(backend.held()).toEqual([]);
  }, 120_000);
});
