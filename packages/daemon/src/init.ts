/**
 * `--init`'s binary (dockerd's docker-init): which host file the engine bind-mounts at
 * /sbin/docker-init (--init-path / daemon.json "init-path", else Debian's tini-static, else
 * tini on $PATH), and its version for /info's InitCommit.
 */
import { execFileSync } from 'node:child_process';
import { findExecutable } from '@berth/runtime-oci';

/** Looked up in this order when no init path is configured. */
export const DEFAULT_INIT_BINARIES = ['/usr/bin/tini-static', 'tini'] as const;

/**
 * The host path of the init binary. A configured path is kept even when missing (a container
 * with Init then fails its start naming it, as dockerd's does); unset and none found: undefined.
 */
export function resolveInitPath(configured: string | undefined, envPath = process.env.PATH ?? ''): string | undefined {
  if (configured) return findExecutable(configured, envPath) ?? configured;
  for (const bin of DEFAULT_INIT_BINARIES) {
    const found = findExecutable(bin, envPath);
    if (found) return found;
  }
  return undefined;
}

/**
 * What /info shows as InitCommit.ID from `docker-init --version` ("tini version 0.19.0 - git.de40ad0"):
 * the git commit as dockerd does, else the version (Debian's tini prints no commit); unknown output: undefined.
 */
export function parseInitVersion(output: string): string | undefined {
  const [head = '', tail] = output.trim().split(' - ');
  const commit = /^git\.([0-9a-f]+)$/.exec(tail?.trim() ?? '')?.[1];
  if (commit) return commit;
  const version = /^tini version (\S+)$/.exec(head.trim())?.[1];
  return version;
}

/** Runs `<init> --version` once (at daemon start); undefined when it cannot run or says something else. */
export function initVersion(initPath: string): string | undefined {
  try {
    return parseInitVersion(execFileSync(initPath, ['--version'], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] }));
  } catch {
    return undefined;
  }
}
