/**
 * e2e helper: run docker-compose (Debian's 1.29, through the Docker API) against a test's
 * berthd — DOCKER_HOST its socket, DOCKER_CONFIG the test's own dir — in a project dir, as
 * project `project`; the exit code and output, never a throw. composeSkipReason(): why a
 * docker-compose test cannot run here (null: it can).
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { which, type Berthd } from './berthd.js';

/** Why the docker-compose tests cannot run (null when docker-compose is on PATH). */
export function composeSkipReason(): string | null {
  return which('docker-compose') ? null : "docker-compose is not installed (scripts/install-deps.sh installs Debian's)";
}

/** `d`: a berthd (its socket as DOCKER_HOST, its dir's docker-config as DOCKER_CONFIG), a started one or just those two. */
export function runCompose(d: Pick<Berthd, 'host' | 'dir'>, projectDir: string, project: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('docker-compose', ['-p', project, ...args], { cwd: projectDir, env: { ...process.env, DOCKER_HOST: d.host, DOCKER_CONFIG: path.join(d.dir, 'docker-config') }, timeout: 300_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}
