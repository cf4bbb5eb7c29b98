/**
 * The holder of a pod-wide PID namespace (`NamespaceOption.pid = POD`, Kubernetes'
 * shareProcessNamespace). Unlike network/IPC/UTS, a PID namespace cannot be kept by an nsfs
 * bind mount: once its PID 1 exits, no process can enter it. So such a pod gets one process:
 * `unshare --pid --fork --kill-child <tini> -s -- sleep infinity`, started detached from berthd
 * (it outlives a berthd restart, as conmon does). tini is PID 1 of the new namespace: it reaps
 * every process re-parented to it (orphans of the pod's containers) and lives as long as its
 * `sleep`. The pod's containers join `/proc/<tini pid>/ns/pid`. The holder is recorded as pid +
 * start time (field 22 of /proc/<pid>/stat), so after a restart berthd finds it again and never
 * mistakes a recycled PID for it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { NotFoundError } from '@berth/core';

/** A running holder: PID 1 of the pod's PID namespace, as seen from the host. */
export interface PidHolder {
  pid: number;
  /** Its start time (clock ticks after boot, /proc/<pid>/stat field 22), decimal. */
  startTime: string;
}

/** Starts a process whose first child is the holder (detached, stdio ignored). */
export type HolderSpawner = () => ChildProcess;

/** Start, find again and stop pods' PID namespace holders. */
export interface PidHolders {
  /** Start a holder in a new PID namespace; throws (leaving nothing behind) when it does not come up. */
  start(): Promise<PidHolder>;
  /** Is the recorded process still that holder (alive, same start time, not a zombie)? */
  alive(h: PidHolder): Promise<boolean>;
  /** Kill it and wait until it is gone (idempotent; a recycled PID is left alone). */
  stop(h: PidHolder): Promise<void>;
}

/** The nsfs path a pod's container joins. */
export const pidNamespacePath = (h: PidHolder): string => `/proc/${h.pid}/ns/pid`;

/** The init that reaps (Debian's tini-static, else tini), as for `docker run --init`. */
export const HOLDER_INITS = ['/usr/bin/tini-static', '/usr/bin/tini', '/usr/local/bin/tini'] as const;

/** The real spawner: unshare (util-linux, needs root) of tini in a new PID namespace. */
export function unshareSpawner(init?: string): HolderSpawner {
  return () => {
    const tini = init ?? HOLDER_INITS.find((p) => existsSync(p));
    if (!tini) throw new NotFoundError(`no tini to hold a pod's PID namespace (looked for ${HOLDER_INITS.join(', ')})`);
    return spawn('unshare', ['--pid', '--fork', '--kill-child', '--', tini, '-s', '--', 'sleep', 'infinity'], { detached: true, stdio: 'ignore' });
  };
}

/** State (field 3) and start time (field 22) of /proc/<pid>/stat; undefined when there is no such process. */
async function procStat(pid: number): Promise<{ state: string; startTime: string } | undefined> {
  try {
    const text = await readFile(`/proc/${pid}/stat`, 'utf8');
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' '); // the comm may hold spaces and parentheses
    return { state: rest[0]!, startTime: rest[19]! };
  } catch {
    return undefined;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Holders made by `spawner` (default: unshareSpawner()); `waitMs` bounds how long a start or stop may take. */
export function pidHolders(spawner: HolderSpawner = unshareSpawner(), waitMs = 10_000): PidHolders {
  const alive = async (h: PidHolder): Promise<boolean> => {
    const s = await procStat(h.pid);
    return !!s && s.startTime === h.startTime && s.state !== 'Z' && s.state !== 'X';
  };
  const stop = async (h: PidHolder): Promise<void> => {
    if (!(await alive(h))) return;
    try {
      process.kill(h.pid, 'SIGKILL'); // PID 1 of the namespace: the kernel kills every process left in it
    } catch {
      return; // gone already
    }
    for (const deadline = Date.now() + waitMs; Date.now() < deadline && (await alive(h)); ) await sleep(10);
  };
  return {
    alive,
    stop,
    async start() {
      const parent = spawner();
      let exited: string | undefined;
      parent.once('exit', (code, signal) => (exited = `exited (${signal ?? code}) before the holder came up`));
      parent.once('error', (err) => (exited = err.message));
      parent.unref();
      const deadline = Date.now() + waitMs;
      try {
        for (;;) {
          if (exited) throw new Error(`the pod's PID namespace holder could not start: ${exited}`);
          const pid = parent.pid ? Number((await readFile(`/proc/${parent.pid}/task/${parent.pid}/children`, 'utf8').catch(() => '')).trim().split(' ')[0]) : 0;
          const s = pid ? await procStat(pid) : undefined;
          if (s) return { pid, startTime: s.startTime };
          if (Date.now() > deadline) throw new Error("the pod's PID namespace holder did not come up in time");
          await sleep(5);
        }
      } catch (err) {
        if (parent.pid && exited === undefined) {
          try {
            process.kill(parent.pid, 'SIGKILL'); // unshare --kill-child takes its child along
          } catch {
            /* gone */
          }
        }
        throw err;
      }
    },
  };
}
