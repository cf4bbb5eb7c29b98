/**
 * berth's optional native addon (native/berth.c, built by native/build.mjs with the system C
 * compiler and Node's headers): mount(2)/umount2(2), and posix_spawn for the daemon's helper
 * processes, so that the hot paths start no process through child_process (which blocks the
 * event loop ~8-10 ms per child: libuv forks the whole Node process and waits for the exec);
 * openat2/readlinkat for walking a container's root one fd-relative step at a time (dirfd.ts).
 * setChildSubreaper/pidfdOpen/waitPidfd let the daemon collect the exits of orphaned
 * descendants (the runtime's reaper.ts).
 * idmapBind makes idmapped bind mounts (the userns plugin's rootfs layers).
 * writeFiles (files.ts) makes directories and replaces files atomically in one thread-pool job
 * (core's atomic writes: a container create's file work); removeTrees (remove.ts) is `rm -rf` of
 * a removal's paths in one thread-pool job, never descending into a mount point.
 * `nativeAddon()` is null when the addon was not built or cannot load, or when BERTH_NATIVE=0;
 * callers then use the binaries and child_process. `nativeAddonStatus().fallback` says why,
 * for the daemon to log once at start.
 */
import { createRequire } from 'node:module';
import { constants } from 'node:os';

export interface RunResult {
  pid: number;
  /** Exit status, null when killed by a signal. */
  status: number | null;
  signal: number | null;
  /** Killed (SIGKILL) because it ran past timeoutMs. */
  timedOut: boolean;
  stdout: string;
  stderr: string;
}

export interface MonitorResult {
  /** The monitor's first process (it daemonises and exits). */
  pid: number;
  status: number | null;
  signal: number | null;
  /** No line on the sync pipe within timeoutMs (the first process was killed). */
  timedOut: boolean;
  /** What the monitor wrote on fd 3, up to and including its first newline. */
  sync: string;
}

export interface NativeAddon {
  mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): Promise<void>;
  umount2(target: string, flags: number): Promise<void>;
  /**
   * Run `path` (absolute; no PATH search) with `argv` (argv[0] included) and `envp` (null:
   * this process's environment), stdin /dev/null, output captured; SIGKILL after timeoutMs
   * (0: no limit).
   */
  run(path: string, argv: string[], envp: string[] | null, timeoutMs: number): Promise<RunResult>;
  /**
   * Start a daemonising monitor (conmon): stdin /dev/null, stdout and stderr to `logPath`
   * (truncated), a pipe on fd 3 read until its first line, `cwd`, a new session. Resolves
   * once the line (or end of file) came and the first process has exited.
   */
  spawnMonitor(path: string, argv: string[], envp: string[] | null, cwd: string | null, logPath: string, timeoutMs: number): Promise<MonitorResult>;
  /** openat2(2) relative to `dirfd` (O_CLOEXEC added); resolves to the new fd, which the caller closes. */
  openat2(dirfd: number, path: string, flags: number, mode: number, resolve: number): Promise<number>;
  /** readlinkat(2): the target of the symlink `path` in `dirfd` ('' with an O_PATH fd of the symlink itself). */
  readlinkat(dirfd: number, path: string): Promise<string>;
  /** prctl(PR_SET_CHILD_SUBREAPER): orphaned descendants become this process's children. */
  setChildSubreaper(on: boolean): void;
  /** prctl(PR_GET_CHILD_SUBREAPER). */
  childSubreaper(): boolean;
  /** pidfd_open(2): an fd naming this very process (no pid reuse); the caller closes it. */
  pidfdOpen(pid: number): number;
  /**
   * waitid(P_PIDFD, fd, WEXITED | WNOHANG): null while the process runs; its exit once
   * collected. Throws (errno ECHILD) when it is not this process's child.
   */
  waitPidfd(fd: number): WaitPidResult | null;
  /**
   * An idmapped bind mount (native/idmap.c): the tree at `source` mounted at `target` with the
   * ID mapping of the user namespace `usernsFd` (open_tree + mount_setattr(MOUNT_ATTR_IDMAP) +
   * move_mount). The caller keeps and closes `usernsFd`.
   */
  idmapBind(source: string, target: string, usernsFd: number): void;
  /**
   * Whether the kernel serves this (x86_64) process x32 and ia32 syscalls (native/abi.c): each
   * probed once with getpid in a forked child. null: not x86_64, or no clear answer.
   */
  syscallAbis(): SyscallAbis;
  /**
   * Directories and atomic file writes as one thread-pool job (native/files.c); callers use
   * `writeFiles()` of files.ts, which gives its errors Node's fs shape.
   */
  writeFiles(dirs: WriteFilesDir[], dir: string, files: WriteFilesFile[], mode: number, flags: number): Promise<void>;
  /**
   * glibc's malloc_trim(0) (native/memory.c): the free memory of every malloc arena back to the
   * kernel; true when some was released. Synchronous, a few ms. false without glibc.
   */
  mallocTrim(): boolean;
  /**
   * `rm -rf` of each absolute path as one thread-pool job, never into a mount point (EBUSY
   * naming it; native/remove.c); callers use `removeTrees()` of remove.ts.
   */
  removeTrees(paths: string[]): Promise<void>;
}

/** The extra syscall ABIs of an x86_64 kernel: true runs, false refused, null unknown. */
export interface SyscallAbis {
  /** x32 (`__X32_SYSCALL_BIT` numbers): false where the kernel has no x32 ABI (ENOSYS). */
  x32: boolean | null;
  /** ia32 (`int $0x80`, 32-bit programs): false where IA32 emulation is off. */
  ia32: boolean | null;
}

export interface WaitPidResult {
  pid: number;
  /** Exit status, null when killed by a signal. */
  status: number | null;
  signal: number | null;
}

export * from './dirfd.js';
export * from './files.js';
export * from './remove.js';
import type { WriteFilesDir, WriteFilesFile } from './files.js';

/** umount2 flag: detach now, clean up when no longer busy (umount -l). */
export const MNT_DETACH = 2;

export interface NativeAddonStatus {
  addon: NativeAddon | null;
  /** Why berth falls back to the binaries and child_process; null when the addon loaded. */
  fallback: string | null;
  /** The loader's error when the addon is there but did not load (or is missing). */
  error?: Error;
}

/** The same path from src/ and dist/: <package>/dist/native/berth.node. */
const ADDON_FILE = new URL('../dist/native/berth.node', import.meta.url).pathname;

/** Load the addon from `file` (the built one by default); never throws: the status says why not. */
export function loadNativeAddon(file: string = ADDON_FILE, env: NodeJS.ProcessEnv = process.env): NativeAddonStatus {
  if (env.BERTH_NATIVE === '0') return { addon: null, fallback: 'disabled (BERTH_NATIVE=0)' };
  if (process.platform !== 'linux') return { addon: null, fallback: `not available on ${process.platform}` };
  try {
    return { addon: createRequire(import.meta.url)(file) as NativeAddon, fallback: null };
  } catch (err) {
    const error = err instanceof Error ? err : new Error(String(err));
    const missing = (error as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND';
    return { addon: null, fallback: missing ? `not built (${file} is missing; see native/build.mjs)` : `cannot load ${file}: ${error.message}`, error };
  }
}

let loaded: NativeAddonStatus | undefined;

/** The addon as this process loaded it (once), and why not. */
export function nativeAddonStatus(): NativeAddonStatus {
  loaded ??= loadNativeAddon();
  return loaded;
}

export function nativeAddon(): NativeAddon | null {
  return nativeAddonStatus().addon;
}

/** The errno name of an addon error (EBUSY …), from its numeric `errno`. */
export function errnoName(err: unknown): string | undefined {
  const n = (err as { errno?: unknown }).errno;
  if (typeof n !== 'number') return undefined;
  return Object.entries(constants.errno).find(([, v]) => v === n)?.[0];
}

/** An environment object as the `envp` of run/spawnMonitor. */
export function envp(env: NodeJS.ProcessEnv): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(env)) if (v !== undefined && !k.includes('=') && !k.includes('\0') && !v.includes('\0')) out.push(`${k}=${v}`);
  return out;
}
