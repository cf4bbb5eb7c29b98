/**
 * What dockerd's verifyContainerSettings checks of a container's Config at create, with
 * dockerd's messages (InvalidParameterError → 400): the working directory, the environment,
 * the healthcheck's durations, the exposed ports, the stop signal and the hostname. The
 * HostConfig half is hostconfig-validate.ts.
 */
import path from 'node:path';
import { InvalidParameterError } from './errors.js';
import { verifyPortKey } from './hostconfig-validate.js';
import { parseSignal } from './signals.js';
import type { ContainerConfig } from './types.js';

const bad = (msg: string) => new InvalidParameterError(msg);

/** containertypes.MinimumDuration: 1 ms, in the nanoseconds the API counts in. */
const MIN_DURATION_NS = 1_000_000;
/** Linux's HOST_NAME_MAX: sethostname(2) refuses more, which would only fail at start. */
const HOST_NAME_MAX = 64;

/** dockerd's opts.ValidateEnv: a name is required ("=x" and "" are refused). */
export function verifyEnv(env: readonly string[] | null | undefined): void {
  for (const e of env ?? []) {
    const eq = e.indexOf('=');
    if ((eq < 0 ? e : e.slice(0, eq)) === '') throw bad(`invalid environment variable: ${e}`);
  }
}

export function verifyWorkingDir(dir: string | null | undefined): void {
  if (dir && !path.posix.isAbsolute(dir)) throw bad(`the working directory '${dir}' is invalid, it needs to be an absolute path`);
}

export function verifyHealthcheck(hc: ContainerConfig['Healthcheck']): void {
  if (!hc) return;
  for (const field of ['Interval', 'Timeout', 'StartPeriod', 'StartInterval'] as const) {
    const v = hc[field] ?? 0;
    if (v !== 0 && v < MIN_DURATION_NS) throw bad(`${field} in Healthcheck cannot be less than 1ms`);
  }
  if ((hc.Retries ?? 0) < 0) throw bad('Retries in Healthcheck cannot be negative');
}

/** Refuse a Config dockerd would refuse at create (the user's Config, before the image's is merged in). */
export function verifyContainerConfig(config: ContainerConfig | null | undefined): void {
  if (!config) return;
  verifyWorkingDir(config.WorkingDir);
  verifyEnv(config.Env);
  verifyHealthcheck(config.Healthcheck);
  for (const key of Object.keys(config.ExposedPorts ?? {})) verifyPortKey(key, true);
  if (config.StopSignal) parseSignal(config.StopSignal);
  if (config.Hostname && config.Hostname.length > HOST_NAME_MAX) {
    throw bad(`invalid hostname: ${HOST_NAME_MAX} characters at most, got ${config.Hostname.length}`);
  }
}
