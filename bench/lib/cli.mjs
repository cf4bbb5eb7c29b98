// Runs the real docker CLI (or runc) as a child process and times it from spawn to exit.
import { spawn } from 'node:child_process';
import { ms, now } from './stats.mjs';

export const DOCKER = process.env.BENCH_DOCKER ?? '/usr/local/bin/docker';

/** Resolves {ms, stdout, stderr}; rejects when the exit status is not 0. */
export function timed(cmd, args, { env = process.env, capture = false, timeoutMs = 120_000 } = {}) {
  return new Promise((resolve, reject) => {
    const t = now();
    const p = spawn(cmd, args, { env, stdio: ['ignore', capture ? 'pipe' : 'ignore', 'pipe'] });
    const out = [];
    const err = [];
    if (capture) p.stdout.on('data', (c) => out.push(c));
    p.stderr.on('data', (c) => err.push(c));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    p.on('close', (code, sig) => {
      clearTimeout(timer);
      const elapsed = ms(t, now());
      const stderr = Buffer.concat(err).toString('utf8');
      if (code !== 0) reject(new Error(`${cmd} ${args.join(' ')} → ${sig ?? code}: ${stderr.trim().slice(0, 500)}`));
      else resolve({ ms: elapsed, stdout: Buffer.concat(out).toString('utf8'), stderr });
    });
  });
}

export function dockerEnv(sock, configDir) {
  return { ...process.env, DOCKER_HOST: `unix://${sock}`, DOCKER_CONFIG: configDir, DOCKER_CLI_HINTS: 'false' };
}
