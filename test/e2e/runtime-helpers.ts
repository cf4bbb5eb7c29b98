/**
 * Helpers of the runtime e2e tests (real runc + conmon, as root): a busybox rootfs built by
 * scripts/build-test-rootfs.sh, OCI specs for it, leak listings, and skip reasons.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { OciSpec, RuntimeCreateOptions } from '@berth/core';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const FAKE_RUNTIME = path.join(REPO, 'test/fixtures/fake-oci-runtime');

const FAKE_RUNTIME_VERBS = ['create', 'start', 'state', 'delete', 'kill', 'pause', 'resume', 'checkpoint', 'restore', 'features'];

/** The fake runtime's invocations recorded by its `--log F`: global args (before the verb), the verb, the verb's args. */
export function fakeRuntimeCalls(argLog: string): Array<{ global: string[]; verb: string; args: string[] }> {
  if (!fs.existsSync(argLog)) return [];
  return fs
    .readFileSync(argLog, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as string[])
    .map((argv) => {
      const i = argv.findIndex((a) => FAKE_RUNTIME_VERBS.includes(a));
      return { global: argv.slice(0, i), verb: argv[i]!, args: argv.slice(i + 1) };
    });
}

function which(bin: string): string | null {
  for (const d of (process.env.PATH ?? '').split(':')) {
    const p = path.join(d, bin);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return null;
}

/** Why the runtime e2e tests cannot run here, or null when they can. */
export function runtimeSkipReason(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (runc creates namespaces and cgroups)';
  if (!which('runc')) return 'runc is not installed (apt-get install runc)';
  if (!which('conmon')) return 'conmon is not installed (apt-get install conmon)';
  if (!fs.existsSync('/bin/busybox')) return 'busybox-static is not installed (apt-get install busybox-static)';
  return null;
}

/** Why real CRIU cannot checkpoint here (criu missing, or `criu check`'s first complaint), or null. */
export function criuSkipReason(): string | null {
  try {
    execFileSync('criu', ['check'], { stdio: 'pipe', timeout: 20_000 });
    return null;
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
    if (e.code === 'ENOENT') return 'criu is not installed (apt-get install criu)';
    const first = (e.stderr?.toString() ?? '').split('\n').find((l) => l.trim());
    return `\`criu check\` fails on this kernel: ${first ?? e.message}`;
  }
}

let sharedRootfs: string | null = null;
/** One busybox rootfs per test process (read-only use: containers get it with readonly root). */
export function testRootfs(): string {
  if (sharedRootfs && fs.existsSync(path.join(sharedRootfs, 'bin/sh'))) return sharedRootfs;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-rootfs-'));
  execFileSync('bash', [path.join(REPO, 'scripts/build-test-rootfs.sh'), dir], { stdio: 'pipe' });
  sharedRootfs = dir;
  return dir;
}

/** Remove the rootfs of this test process (call in afterAll). */
export function removeTestRootfs(): void {
  if (sharedRootfs) fs.rmSync(sharedRootfs, { recursive: true, force: true });
  sharedRootfs = null;
}

export function newId(): string {
  return Array.from({ length: 64 }, () => '0123456789abcdef'[Math.floor(Math.random() * 16)]).join('');
}

export const CGROUP_PARENT = 'berth-e2e';

/** A minimal runc-compatible spec for the busybox rootfs (like `runc spec`, read-only root). */
/**
 * Teardown for a test file that drives one OCI backend on its own temp dir: after each test
 * the containers it created are force-deleted; after all, the backend is closed and anything
 * left (runc state, processes, mounts under the temp dir) removed with the test rootfs.
 */
export function ociBackendTeardown(
  hooks: { afterEach(fn: () => Promise<void>): void; afterAll(fn: () => Promise<void>): void },
  get: () => { backend?: { delete(id: string, o: { force: boolean }): Promise<void>; close(): Promise<void> }; tmp?: string },
  ids: string[],
): void {
  hooks.afterEach(async () => {
    const { backend } = get();
    for (const id of ids.splice(0)) await backend?.delete(id, { force: true }).catch(() => undefined);
  });
  hooks.afterAll(async () => {
    const { backend, tmp } = get();
    await backend?.close();
    if (tmp) forceCleanup(path.join(tmp, 'exec/oci/state/runc'), ids, [tmp]);
    removeTestRootfs();
  });
}

/** Create options for a busybox container on runc without a TTY, logging to `logPath`. */
export function busyboxCreateOptions(rootfs: string, id: string, args: string[], logPath: string): RuntimeCreateOptions {
  return {
    id,
    spec: busyboxSpec(rootfs, id, args),
    runtime: 'runc',
    runtimeArgs: [],
    rootUid: 0,
    rootGid: 0,
    stdio: { tty: false, openStdin: false, stdinOnce: false },
    log: { path: logPath },
  };
}

export function busyboxSpec(
  rootfs: string,
  id: string,
  args: string[],
  opts: { tty?: boolean; env?: string[]; cwd?: string; memoryLimit?: number } = {},
): OciSpec {
  const spec = {
    ociVersion: '1.0.2',
    process: {
      terminal: opts.tty ?? false,
      user: { uid: 0, gid: 0 },
      args,
      env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin', 'HOME=/root', ...(opts.env ?? [])],
      cwd: opts.cwd ?? '/',
      capabilities: {
        bounding: ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE', 'CAP_CHOWN', 'CAP_SETUID', 'CAP_SETGID'],
        effective: ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE', 'CAP_CHOWN', 'CAP_SETUID', 'CAP_SETGID'],
        permitted: ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE', 'CAP_CHOWN', 'CAP_SETUID', 'CAP_SETGID'],
      },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: rootfs, readonly: true },
    hostname: 'berth',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777'] },
    ],
    linux: {
      cgroupsPath: `/${CGROUP_PARENT}/${id}`,
      resources: {
        devices: [{ allow: false, access: 'rwm' }],
        ...(opts.memoryLimit ? { memory: { limit: opts.memoryLimit } } : {}),
      },
      namespaces: [{ type: 'pid' }, { type: 'network' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }],
      maskedPaths: ['/proc/kcore', '/proc/keys', '/proc/timer_list', '/sys/firmware'],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
  return spec as unknown as OciSpec;
}

/** Processes whose command line mentions `needle` (conmon -c ID, runc init of ID …). */
export function processesMentioning(needle: string): string[] {
  const out: string[] = [];
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmd.includes(needle)) out.push(`${pid}: ${cmd.slice(0, 160)}`);
    } catch {
      /* gone */
    }
  }
  return out;
}

/** Mounts whose mount point or source mentions `needle`. */
export function mountsMentioning(needle: string): string[] {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.includes(needle));
}

/** cgroup directories (any hierarchy) named `name` under the test cgroup parent. */
export function cgroupsNamed(name: string): string[] {
  const out: string[] = [];
  const roots = ['/sys/fs/cgroup', ...fs.readdirSync('/sys/fs/cgroup').map((d) => path.join('/sys/fs/cgroup', d))];
  for (const r of roots) {
    const p = path.join(r, CGROUP_PARENT, name);
    if (fs.existsSync(p)) out.push(p);
  }
  return out;
}

/** Every file below `dir` (relative paths). */
export function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(path.relative(dir, p));
    }
  };
  walk(dir);
  return out;
}

/** Best-effort removal of containers of a test: kill, delete, and the temp dirs. */
export function forceCleanup(runcRoot: string, ids: string[], dirs: string[]): void {
  for (const id of ids) {
    try {
      execFileSync('runc', ['--root', runcRoot, 'kill', '--all', id, '9'], { stdio: 'ignore' });
    } catch {
      /* not running */
    }
    try {
      execFileSync('runc', ['--root', runcRoot, 'delete', '--force', id], { stdio: 'ignore' });
    } catch {
      /* gone */
    }
    for (const line of processesMentioning(id)) {
      const pid = Number(line.split(':')[0]);
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    for (const cg of cgroupsNamed(id)) {
      try {
        fs.rmdirSync(cg);
      } catch {
        /* busy or gone */
      }
    }
  }
  for (const d of dirs) {
    for (const m of mountsMentioning(d)) {
      const mp = m.split(' ')[4];
      try {
        execFileSync('umount', ['-l', mp], { stdio: 'ignore' });
      } catch {
        /* not mounted */
      }
    }
    fs.rmSync(d, { recursive: true, force: true });
  }
}

/** A writable collector for attach/exec output. */
export class Sink {
  chunks: Buffer[] = [];
  private waiters: Array<{ re: RegExp; resolve: () => void }> = [];
  write(d: Buffer | string): boolean {
    this.chunks.push(Buffer.isBuffer(d) ? d : Buffer.from(d));
    const text = this.text();
    this.waiters = this.waiters.filter((w) => {
      if (w.re.test(text)) {
        w.resolve();
        return false;
      }
      return true;
    });
    return true;
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
  waitFor(re: RegExp, ms = 10_000): Promise<void> {
    if (re.test(this.text())) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re} in ${JSON.stringify(this.text())}`)), ms);
      this.waiters.push({
        re,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }
}

const CHILD = path.join(REPO, 'test/e2e/runtime-daemon-child.mjs');

/** The child imports the packages' built dist: build them when missing or older than the sources. */
export function ensureBuilt(): void {
  const newest = (dir: string): number => {
    let m = 0;
    for (const f of fs.readdirSync(dir, { recursive: true }) as string[]) {
      const p = path.join(dir, f);
      if (p.endsWith('.ts')) m = Math.max(m, fs.statSync(p).mtimeMs);
    }
    return m;
  };
  // tsc -b rewrites .tsbuildinfo on every build that had work to do (not every output file).
  const builtAt = (pkg: string): number => {
    const info = path.join(REPO, 'packages', pkg, 'dist/.tsbuildinfo');
    return fs.existsSync(path.join(REPO, 'packages', pkg, 'dist/index.js')) && fs.existsSync(info) ? fs.statSync(info).mtimeMs : 0;
  };
  const stale = ['core', 'runtime-oci'].some((pkg) => builtAt(pkg) < newest(path.join(REPO, 'packages', pkg, 'src')));
  if (!stale) return;
  try {
    execFileSync('npx', ['tsc', '-b', 'packages/runtime-oci/tsconfig.json'], { cwd: REPO, stdio: 'pipe' });
  } catch (err) {
    const missing = ['core', 'runtime-oci'].filter((pkg) => !fs.existsSync(path.join(REPO, 'packages', pkg, 'dist/index.js')));
    const out = (err as { stdout?: Buffer }).stdout?.toString() ?? String(err);
    if (missing.length) throw new Error(`cannot build ${missing.join(', ')} for the daemon child: ${out}`);
    console.warn(`runtime e2e: rebuilding the dist failed; using the existing (older) build:\n${out.slice(0, 2000)}`);
  }
}

interface Reply {
  seq: number;
  ok: boolean;
  value?: unknown;
  error?: string;
}

export class Daemon {
  private seq = 0;
  private pending = new Map<number, (r: Reply) => void>();
  readonly ready: Promise<void>;
  constructor(readonly proc: ChildProcess) {
    let stderr = '';
    proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const rl = createInterface({ input: proc.stdout! });
    this.ready = new Promise((resolve, reject) => {
      proc.once('exit', (code) => reject(new Error(`daemon exited ${code}: ${stderr}`)));
      rl.on('line', (line) => {
        const msg = JSON.parse(line) as Reply & { ready?: boolean };
        if (msg.ready) resolve();
        else this.pending.get(msg.seq)?.(msg);
      });
    });
  }
  static start(dataRoot: string, execRoot: string): Daemon {
    return new Daemon(spawn(process.execPath, [CHILD, dataRoot, execRoot], { cwd: path.dirname(CHILD), stdio: ['pipe', 'pipe', 'pipe'] }));
  }
  call<T>(op: string, args: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<T> {
    const seq = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${op} timed out`)), timeoutMs);
      this.pending.set(seq, (r) => {
        clearTimeout(t);
        this.pending.delete(seq);
        if (r.ok) resolve(r.value as T);
        else reject(new Error(`${op}: ${r.error}`));
      });
      this.proc.stdin!.write(`${JSON.stringify({ seq, op, args })}\n`);
    });
  }
  kill9(): Promise<void> {
    return new Promise((resolve) => {
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) return resolve();
      this.proc.once('exit', () => resolve());
      this.proc.kill('SIGKILL');
    });
  }
}

