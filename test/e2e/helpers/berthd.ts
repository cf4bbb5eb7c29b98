/**
 * Shared e2e helpers: start a real berthd process (packages/cli/bin/berthd, built by
 * `pnpm build`) on temp dirs, talk to it with the real docker CLI, load the test image, and
 * clean up even on failure (SIGTERM, then SIGKILL; mounts under the temp dir unmounted;
 * the temp dir removed).
 *
 *   const d = await startBerthd();          // skips are decided by berthdSkipReason()
 *   await d.loadTestImage();               // berth-test/busybox
 *   const r = await d.docker(['run', '--rm', TEST_IMAGE, 'echo', 'hi']);
 *   await d.stop();
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { mountPointsUnder, readMountInfoSync } from '@berth/core';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const BERTHD_BIN = process.env.BERTHD_BIN ?? path.join(REPO_ROOT, 'packages/cli/bin/berthd');
export const DOCKER_BIN = process.env.DOCKER_BIN ?? '/usr/local/bin/docker';
/** The image scripts/build-test-image.sh builds (docker-save tarball). */
export const TEST_IMAGE = 'berth-test/busybox';

/** Bytes of a docker CLI size such as "300kB" or "1.23MB" (decimal units, as go-units HumanSize). */
export function bytesOf(s: string): number {
  const m = /^([\d.]+)\s*(B|kB|MB|GB)$/.exec(s.trim());
  if (!m) throw new Error(`not a size: ${JSON.stringify(s)}`);
  return Number(m[1]) * { B: 1, kB: 1e3, MB: 1e6, GB: 1e9 }[m[2] as 'B' | 'kB' | 'MB' | 'GB'];
}

/** Whether an executable of that name is on $PATH. */
export function which(bin: string): boolean {
  return (process.env.PATH ?? '').split(':').some((d) => {
    try {
      fs.accessSync(path.join(d, bin), fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Why a real berthd cannot run here (null when it can). */
export function berthdSkipReason(): string | null {
  if (process.getuid?.() !== 0) return 'needs root';
  if (!which('runc')) return 'runc is not installed';
  if (!which('conmon')) return 'conmon is not installed';
  if (!fs.existsSync(DOCKER_BIN)) return `the docker CLI is not at ${DOCKER_BIN}`;
  if (!fs.existsSync(path.join(REPO_ROOT, 'packages/daemon/dist/berthd-main.js'))) return 'berthd is not built (pnpm build)';
  return null;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface DockerOptions {
  /** Written to the CLI's stdin, then stdin is closed. */
  input?: string | Buffer;
  timeoutMs?: number;
  env?: Record<string, string>;
}

/** Run the docker CLI against `host` (unix://…); never throws on a non-zero exit. */
export function dockerCli(host: string, configDir: string, args: string[], opts: DockerOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(DOCKER_BIN, args, {
      env: { ...process.env, DOCKER_HOST: host, DOCKER_CONFIG: configDir, DOCKER_CLI_HINTS: 'false', ...(opts.env ?? {}) },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr });
    });
    child.stdin.on('error', () => {});
    if (opts.input !== undefined) child.stdin.end(opts.input);
    else child.stdin.end();
  });
}

/** Run a docker command inside a pseudo-terminal (util-linux `script`), for -t/-it. */
export function dockerInPty(host: string, configDir: string, args: string[], input: string, opts: { timeoutMs?: number; inputDelayMs?: number } = {}): Promise<CliResult> {
  const quoted = [DOCKER_BIN, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qec', quoted, '/dev/null'], {
      env: { ...process.env, DOCKER_HOST: host, DOCKER_CONFIG: configDir, DOCKER_CLI_HINTS: 'false', TERM: 'xterm' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    setTimeout(() => child.stdin.write(input), opts.inputDelayMs ?? 1000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

/** GET/POST on a unix socket: status and body. */
export function apiRequest(socketPath: string, method: string, urlPath: string, body?: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const req = http.request(
      { socketPath, method, path: urlPath, headers: payload ? { 'Content-Type': 'application/json', 'Content-Length': payload.length } : {} },
      (res) => {
        let data = '';
        res.on('data', (c: Buffer) => (data += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

let testImageTar: string | null = null;
/** Build the test image tarball once per test process (scripts/build-test-image.sh). */
export function testImageTarball(): string {
  if (testImageTar && fs.existsSync(testImageTar)) return testImageTar;
  // under the run's dir (helpers/global-setup.ts removes it when the run ends)
  const dir = fs.mkdtempSync(path.join(process.env.BERTH_E2E_RUN_DIR ?? os.tmpdir(), 'berth-e2e-image-'));
  // a file whose describes build it again after one removed it, or that never removes it,
  // still leaves nothing behind when its test process ends
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  execFileSync('bash', [path.join(REPO_ROOT, 'scripts/build-test-image.sh'), dir], { stdio: 'pipe' });
  testImageTar = path.join(dir, 'busybox.tar');
  return testImageTar;
}

/** Remove the test image tarball of this test process (call in afterAll). */
export function removeTestImageTarball(): void {
  if (testImageTar) fs.rmSync(path.dirname(testImageTar), { recursive: true, force: true });
  testImageTar = null;
}

function unmountUnder(dir: string): void {
  let mounts: string[] = [];
  try {
    mounts = mountPointsUnder(dir, readMountInfoSync());
  } catch {
    return;
  }
  for (const m of mounts.sort((a, b) => b.length - a.length)) {
    try {
      execFileSync('umount', ['-l', m], { stdio: 'ignore' });
    } catch {
      /* already gone */
    }
  }
}

export interface Berthd {
  readonly dir: string;
  readonly socket: string;
  readonly host: string;
  readonly dataRoot: string;
  readonly execRoot: string;
  readonly pidfile: string;
  readonly process: ChildProcess;
  /** Everything berthd printed so far. */
  log(): string;
  docker(args: string[], opts?: DockerOptions): Promise<CliResult>;
  dockerInPty(args: string[], input: string, opts?: { timeoutMs?: number; inputDelayMs?: number }): Promise<CliResult>;
  api(method: string, urlPath: string, body?: unknown): Promise<{ status: number; body: string }>;
  /** docker load the test image (berth-test/busybox). */
  loadTestImage(): Promise<void>;
  /** SIGTERM (or `signal`), wait for the exit; SIGKILL after `timeoutMs`. Returns the exit code. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
  /** stop() if needed, unmount and remove the temp dir. Safe to call twice. */
  cleanup(): Promise<void>;
  /** Resolves when berthd exits by itself (e.g. killed by a failpoint): its code and signal. */
  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface StartOptions {
  /** Extra berthd flags. */
  args?: string[];
  /** Reuse this temp dir (data root survives a restart). */
  dir?: string;
  /** Expect berthd to fail: resolve with its exit code and output instead of waiting for the socket. */
  expectFailure?: boolean;
  timeoutMs?: number;
  /** Extra environment for berthd (e.g. BERTH_FAILPOINTS for the crash-consistency tests). */
  env?: Record<string, string>;
  /** A Node script berthd runs under (given berthd's argv), e.g. helpers/prompt-init.mjs. */
  launcher?: string;
  /** Another daemon executable than berthd's bin, taking berthd's flags (a custom build via berthdMain). */
  bin?: string;
}

/** Start berthd on temp dirs and wait for /_ping. */
export async function startBerthd(opts: StartOptions = {}): Promise<Berthd> {
  const dir = opts.dir ?? fs.mkdtempSync(path.join('/tmp', 'bd-'));
  const socket = path.join(dir, 'api.sock');
  const dataRoot = path.join(dir, 'data');
  const execRoot = path.join(dir, 'exec');
  const pidfile = path.join(dir, 'berthd.pid');
  const configDir = path.join(dir, 'docker-config');
  fs.mkdirSync(configDir, { recursive: true });
  // No default bridge network unless the test asks for one (--bridge/-b/--bip): berthd's default bridge
  // (network-cni) would make the host bridge berth0 and turn ip_forward on in every test; network
  // tests pass their own bridge name and subnet (network-cni.e2e.test.ts) and put things back.
  const ownBridge = (opts.args ?? []).some((a) => a === '-b' || a === '--bridge' || a.startsWith('--bridge=') || a === '--bip' || a.startsWith('--bip='));
  const args = [opts.bin ?? BERTHD_BIN, '-H', `unix://${socket}`, '--data-root', dataRoot, '--exec-root', execRoot, '--pidfile', pidfile, '--log-level', 'debug', ...(ownBridge ? [] : ['--bridge', 'none']), ...(opts.args ?? [])];
  const child = spawn(process.execPath, opts.launcher ? [opts.launcher, ...args] : args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: REPO_ROOT, env: { ...process.env, ...(opts.env ?? {}) } });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  let exitCode: number | null | undefined;
  let exitSignal: NodeJS.Signals | null = null;
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code, signal) => {
      exitSignal = signal;
      exitCode = code ?? (signal ? 128 : null);
      resolve(exitCode);
    }),
  );
  const host = `unix://${socket}`;
  let cleaned = false;
  const d: Berthd = {
    dir,
    socket,
    host,
    dataRoot,
    execRoot,
    pidfile,
    process: child,
    log: () => output,
    exited: () => exited.then((code) => ({ code, signal: exitSignal })),
    docker: (a, o) => dockerCli(host, configDir, a, o),
    dockerInPty: (a, input, o) => dockerInPty(host, configDir, a, input, o),
    api: (m, p, b) => apiRequest(socket, m, p, b),
    async loadTestImage() {
      const r = await dockerCli(host, configDir, ['load', '-i', testImageTarball()]);
      if (r.code !== 0) throw new Error(`docker load failed: ${r.stderr}`);
    },
    async stop(signal = 'SIGTERM', timeoutMs = 30_000) {
      if (exitCode !== undefined) return exitCode;
      child.kill(signal);
      const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
    async cleanup() {
      if (cleaned) return;
      cleaned = true;
      await d.stop('SIGTERM', 20_000);
      // Containers berthd could not stop: kill their monitors and runtimes by the exec root in their command line.
      try {
        const pids = execFileSync('pgrep', ['-f', execRoot], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
        for (const p of pids) if (p !== process.pid) process.kill(p, 'SIGKILL');
      } catch {
        /* none */
      }
      unmountUnder(dir);
      if (!opts.dir) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  if (opts.expectFailure) {
    await Promise.race([exited, new Promise((r) => setTimeout(r, opts.timeoutMs ?? 15_000))]);
    return d;
  }
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
  for (;;) {
    if (exitCode !== undefined) {
      await d.cleanup();
      throw new Error(`berthd exited with ${exitCode} before serving:\n${output}`);
    }
    if (fs.existsSync(socket)) {
      try {
        const r = await apiRequest(socket, 'GET', '/_ping');
        if (r.status === 200) return d;
      } catch {
        /* not yet */
      }
    }
    if (Date.now() > deadline) {
      await d.cleanup();
      throw new Error(`berthd did not answer /_ping in time:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
