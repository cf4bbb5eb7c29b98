/**
 * Liveness of a container's monitor (conmon) and of the container's init, for the case the
 * exit file cannot cover: a monitor that was killed (or crashed) writes no exit file, so
 * without this the exit is never seen. Processes are named by pid *and* start time
 * (/proc/<pid>/stat field 22), so a recycled pid is never mistaken for the one we watched.
 *
 * When the monitor is gone and the container's init is gone too, its exit code is in the
 * kernel only while the process is a zombie nobody reaped yet (/proc/<pid>/stat field 52);
 * otherwise it is known only when berth itself sent the SIGKILL (137). Anything else is
 * reported as core's EXIT_CODE_UNKNOWN (255, as dockerd) and logged as unknown — never as a clean exit.
 */
import * as fs from 'node:fs';
import { EXIT_CODE_UNKNOWN } from '@berth/core';

export interface ProcRef {
  pid: number;
  /** Start time in clock ticks since boot; '' when it could not be read. */
  start: string;
}

interface ProcStat {
  state: string;
  start: string;
  /** The wait status the kernel keeps for a zombie (field 52, Linux ≥ 3.5). */
  exitCode: number | null;
}

function readStat(pid: number): ProcStat | null {
  if (!(pid > 0)) return null;
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // Fields after the command (which may hold spaces and parentheses): field 3 is index 0.
  const f = text.slice(text.lastIndexOf(')') + 2).trim().split(' ');
  const code = f.length >= 50 ? Number(f[49]) : NaN;
  return { state: f[0] ?? '', start: f[19] ?? '', exitCode: Number.isFinite(code) ? code : null };
}

/** A reference to a running process (null when it is not there). */
export function procRef(pid: number): ProcRef | null {
  const st = readStat(pid);
  if (!st || st.state === 'Z' || st.state === 'X') return null;
  return { pid, start: st.start };
}

/** Is this very process (same pid, same start time) still running (not a zombie)? */
export function stillRunning(ref: ProcRef | null | undefined): boolean {
  if (!ref) return false;
  const st = readStat(ref.pid);
  if (!st || st.state === 'Z' || st.state === 'X') return false;
  return !ref.start || st.start === ref.start;
}

/**
 * The exit code of a process that has exited, if the kernel still holds it (an unreaped
 * zombie of this very process): the shell's convention, 128+signal for a signal.
 */
export function zombieExitCode(ref: ProcRef | null | undefined): number | null {
  if (!ref) return null;
  const st = readStat(ref.pid);
  if (!st || st.state !== 'Z' || (ref.start && st.start !== ref.start) || st.exitCode === null) return null;
  const status = st.exitCode;
  const sig = status & 0x7f;
  return sig === 0 ? (status >> 8) & 0xff : 128 + sig;
}

/** The exit code in a conmon exit file; null while it is not (completely) there. */
export function readExitCode(file: string): number | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8').trim();
  } catch {
    return null;
  }
  return /^-?\d+$/.test(text) ? Number(text) : null;
}

/**
 * What berth reports for a container whose monitor was lost and whose init is gone: `reaped`
 * is the exit berthd collected itself as the init's subreaper (reaper.ts), when it did.
 */
export function lostExitCode(init: ProcRef | null | undefined, killedByUs: boolean, reaped?: number): { code: number; known: boolean } {
  if (reaped !== undefined) return { code: reaped, known: true };
  const real = zombieExitCode(init);
  if (real !== null) return { code: real, known: true };
  if (killedByUs) return { code: 137, known: true };
  return { code: EXIT_CODE_UNKNOWN, known: false };
}
