/**
 * e2e helper: run docker-compose (Debian's 1.29, through the Docker API) against a test's
 * berthd — DOCKER_HOST its socket, DOCKER_CONFIG the test's own dir — in a project dir, as
 * project `project`; the exit code and output, never a throw.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import type { Berthd } from './berthd.js';

export function runCompose(d: Berthd, projectDir: string, project: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('docker-compose', ['-p', project, ...args], { cwd: projectDir, env: { ...process.env, DOCKER_HOST: d.host, DOCKER_CONFIG: path.join(d.dir, 'docker-config') }, timeout: 300_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}
