/**
 * How network-cni runs its helper processes (the CNI plugins, unshare, nsenter): through the
 * native addon's posix_spawn (@berth/native) when it is loaded, else child_process. A
 * child_process spawn forks the whole daemon and blocks its event loop while it does (~10 ms a
 * process on a loaded machine); posix_spawn costs ~1 ms and blocks nothing. A bridge start and
 * its release run three or four of these, so this is a large part of what networking adds to
 * `docker run` (docs/benchmarks.md, Networking).
 * The addon gives a child /dev/null as stdin; a CNI plugin reads its configuration from stdin,
 * so the configuration goes to a private temp file and `/bin/sh -c 'exec "$0" < "$1"'` puts it
 * there (sh replaces itself by the plugin: the same process, killed on timeout as before).
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, constants, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { promisify } from 'node:util';
import { envp, nativeAddon, type NativeAddon } from '@berth/native';

const execFileP = promisify(execFile);
const SH = '/bin/sh';

/** What a finished process gave: its exit status (null when killed: a signal or the timeout). */
export interface SpawnResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

const found = new Map<string, Promise<string | null>>();

/** The absolute path of `name` on PATH (cached), or null. */
export function lookPath(name: string): Promise<string | null> {
  if (isAbsolute(name)) return Promise.resolve(name);
  let p = found.get(name);
  if (!p) {
    const dirs = (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').filter(Boolean);
    p = (async () => {
      for (const d of dirs) {
        const f = join(d, name);
        if (await access(f, constants.X_OK).then(() => true, () => false)) return f;
      }
      return null;
    })();
    found.set(name, p);
  }
  return p;
}

/** Run a tool found on PATH with `args`; throws with its stderr when it fails (`native`: tests give null for child_process). */
export async function runTool(name: string, args: string[], timeoutMs = 30_000, native: NativeAddon | null = nativeAddon()): Promise<string> {
  const bin = native ? await lookPath(name) : null;
  if (native && bin) {
    const r = await native.run(bin, [name, ...args], envp(process.env), timeoutMs);
    if (r.status === 0) return r.stdout;
    const how = r.timedOut ? `timed out after ${timeoutMs} ms` : r.signal !== null ? `killed by signal ${r.signal}` : `exit status ${r.status}`;
    throw Object.assign(new Error(`${name} failed: ${how}`), { stderr: r.stderr });
  }
  return (await execFileP(name, args, { timeout: timeoutMs, killSignal: 'SIGKILL' })).stdout;
}

/** Run `binary` with only the environment `env` and `stdin` as its standard input (`native`: tests give null for child_process). */
export async function runWithStdin(binary: string, env: Record<string, string>, stdin: string, timeoutMs: number, native: NativeAddon | null = nativeAddon()): Promise<SpawnResult> {
  if (native && (await lookPath(SH))) {
    const file = join(tmpdir(), `berth-cni-${randomBytes(8).toString('hex')}.json`);
    await writeFile(file, stdin, { mode: 0o600, flag: 'wx' });
    try {
      const r = await native.run(SH, [SH, '-c', 'exec "$0" < "$1"', binary, file], envp(env), timeoutMs);
      return { code: r.timedOut || r.signal !== null ? null : r.status, stdout: r.stdout, stderr: r.stderr };
    } finally {
      await unlink(file).catch(() => {});
    }
  }
  return new Promise((resolve, reject) => {
    const child = spawn(binary, [], { env, stdio: ['pipe', 'pipe', 'pipe'], timeout: timeoutMs, killSignal: 'SIGKILL' });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code: signal ? null : code, stdout, stderr }));
    child.stdin.on('error', () => {}); // a plugin that exits without reading its config
    child.stdin.end(stdin);
  });
}
