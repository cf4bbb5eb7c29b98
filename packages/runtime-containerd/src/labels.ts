/**
 * What the containerd backend keeps of a container in containerd itself, as labels on the
 * containerd container: its json-file log (path, rotation) and its stdio settings, so that a
 * restarted daemon reopens the right FIFOs and log without a file of its own. And where the
 * FIFOs of a task or exec process are (`stdioOf`).
 */
import * as path from 'node:path';
import type { RuntimeCreateOptions } from '@berth/core';

export const LABEL = {
  logPath: 'io.berth.log.path',
  logMaxSize: 'io.berth.log.max-size',
  logMaxFile: 'io.berth.log.max-file',
  tty: 'io.berth.tty',
  openStdin: 'io.berth.open-stdin',
  stdinOnce: 'io.berth.stdin-once',
} as const;

export interface TaskLabels {
  /** The labels as containerd stores them. */
  raw: Record<string, string>;
  logPath: string;
  maxSize?: number;
  maxFile?: number;
  tty: boolean;
  openStdin: boolean;
  stdinOnce: boolean;
}

const positive = (v: string | undefined): number | undefined => {
  const n = v === undefined ? NaN : Number(v);
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
};

/** The labels of a new container (from the create options) or read back from containerd. */
export function labelsOf(src: RuntimeCreateOptions | Record<string, string>): TaskLabels {
  const raw: Record<string, string> = {};
  if (isCreateOptions(src)) {
    raw[LABEL.logPath] = src.log.path;
    if (src.log.maxSize) raw[LABEL.logMaxSize] = String(src.log.maxSize);
    if (src.log.maxFile) raw[LABEL.logMaxFile] = String(src.log.maxFile);
    raw[LABEL.tty] = String(src.stdio.tty);
    raw[LABEL.openStdin] = String(src.stdio.openStdin);
    raw[LABEL.stdinOnce] = String(src.stdio.stdinOnce);
  } else {
    for (const k of Object.values(LABEL)) if (src[k] !== undefined) raw[k] = src[k];
  }
  return {
    raw,
    logPath: raw[LABEL.logPath] ?? '',
    maxSize: positive(raw[LABEL.logMaxSize]),
    maxFile: positive(raw[LABEL.logMaxFile]),
    tty: raw[LABEL.tty] === 'true',
    openStdin: raw[LABEL.openStdin] === 'true',
    stdinOnce: raw[LABEL.stdinOnce] === 'true',
  };
}

function isCreateOptions(src: RuntimeCreateOptions | Record<string, string>): src is RuntimeCreateOptions {
  return typeof (src as RuntimeCreateOptions).log === 'object' && typeof (src as RuntimeCreateOptions).stdio === 'object';
}

export interface StdioPaths {
  /** Absent when the process has no stdin. */
  stdin?: string;
  stdout: string;
  /** Absent with a terminal (everything comes through the terminal, on stdout). */
  stderr?: string;
}

/** The FIFOs of the init (`execId` '') or of an exec process, in the container's directory. */
export function stdioOf(dir: string, execId: string, o: { tty: boolean; openStdin: boolean }): StdioPaths {
  const prefix = execId ? `exec-${execId}-` : 'init-';
  return {
    ...(o.openStdin ? { stdin: path.join(dir, `${prefix}stdin`) } : {}),
    stdout: path.join(dir, `${prefix}stdout`),
    ...(o.tty ? {} : { stderr: path.join(dir, `${prefix}stderr`) }),
  };
}
