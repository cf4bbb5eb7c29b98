import type { OciSpec } from '../oci.js';
import type { SpecOpt } from './opts.js';
import { DEFAULT_PATH_ENV } from './defaults.js';

/**
 * dockerd's ReplaceOrAppendEnvValues: an override "K=v" replaces K in `defaults` or is
 * appended; a bare "K" removes K from `defaults`.
 */
export function replaceOrAppendEnv(defaults: readonly string[], overrides: readonly string[]): string[] {
  const out: (string | null)[] = [...defaults];
  const index = new Map<string, number>();
  out.forEach((e, i) => {
    if (e !== null) index.set(e.includes('=') ? e.slice(0, e.indexOf('=')) : e, i);
  });
  for (const v of overrides) {
    const eq = v.indexOf('=');
    if (eq < 0) {
      const i = index.get(v);
      if (i !== undefined) out[i] = null;
      continue;
    }
    const i = index.get(v.slice(0, eq));
    if (i !== undefined) out[i] = v;
    else out.push(v);
  }
  return out.filter((e): e is string => e !== null);
}

/**
 * The container's environment like dockerd's CreateDaemonEnvironment: PATH (the default
 * unless Config.Env sets one), HOSTNAME, TERM=xterm with a TTY, the legacy links' variables,
 * then Config.Env (which replaces any of them it names).
 */
export function containerEnv(opts: { env?: readonly string[] | null; hostname: string; tty?: boolean; linkEnv?: readonly string[] }): string[] {
  const base = [DEFAULT_PATH_ENV, `HOSTNAME=${opts.hostname}`];
  if (opts.tty) base.push('TERM=xterm');
  base.push(...(opts.linkEnv ?? []));
  return replaceOrAppendEnv(base, opts.env ?? []);
}

export interface ProcessOptions {
  args: readonly string[];
  env: readonly string[];
  cwd: string;
  terminal?: boolean;
  consoleSize?: { height: number; width: number };
  oomScoreAdj?: number;
  noNewPrivileges?: boolean;
}

/** Sets process args, env, cwd, terminal, console size, oomScoreAdj, noNewPrivileges. */
export function withProcess(o: ProcessOptions): SpecOpt {
  return (spec: OciSpec) => {
    const process = { ...(spec.process ?? { user: { uid: 0, gid: 0 }, cwd: '/' }) };
    process.args = [...o.args];
    process.env = [...o.env];
    process.cwd = o.cwd;
    if (o.terminal) process.terminal = true;
    else delete process.terminal;
    if (o.consoleSize) process.consoleSize = { ...o.consoleSize };
    else delete process.consoleSize;
    process.oomScoreAdj = o.oomScoreAdj ?? 0;
    if (o.noNewPrivileges) process.noNewPrivileges = true;
    else delete process.noNewPrivileges;
    return { ...spec, process };
  };
}

/** Sets spec.hostname (omitted when empty, e.g. with the host's UTS namespace). */
export function withHostname(hostname: string | undefined): SpecOpt {
  return (spec: OciSpec) => {
    const next = { ...spec };
    if (hostname) next.hostname = hostname;
    else delete next.hostname;
    return next;
  };
}

export function withRoot(rootfsPath: string, readonly: boolean): SpecOpt {
  return (spec: OciSpec) => ({ ...spec, root: readonly ? { path: rootfsPath, readonly: true } : { path: rootfsPath } });
}

/** linux.maskedPaths / linux.readonlyPaths; empty lists remove the fields. */
export function withSystemPaths(masked: readonly string[], readonly: readonly string[]): SpecOpt {
  return (spec: OciSpec) => {
    const linux = { ...(spec.linux ?? {}) };
    if (masked.length > 0) linux.maskedPaths = [...masked];
    else delete linux.maskedPaths;
    if (readonly.length > 0) linux.readonlyPaths = [...readonly];
    else delete linux.readonlyPaths;
    return { ...spec, linux };
  };
}

export function withCgroupsPath(cgroupsPath: string): SpecOpt {
  return (spec: OciSpec) => ({ ...spec, linux: { ...(spec.linux ?? {}), cgroupsPath } });
}

export function withAnnotations(annotations: Record<string, string> | null | undefined): SpecOpt {
  return (spec: OciSpec) => {
    const merged = { ...(spec.annotations ?? {}), ...(annotations ?? {}) };
    const next = { ...spec };
    if (Object.keys(merged).length > 0) next.annotations = merged;
    else delete next.annotations;
    return next;
  };
}
