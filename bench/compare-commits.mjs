#!/usr/bin/env node
// Did a change make the start slower? Two berthds side by side in one run: one built from a
// base commit (a temporary `git worktree`, installed offline from the pnpm store and built),
// one from this checkout (built already). N interleaved `docker run --rm --network none IMAGE
// true` against each (every iteration rotates which goes first); this checkout is measured
// twice, with its default plugins and with `--security-opt seccomp=unconfined`, so a start
// that only pays for a new protection can be told from a regression. Prints medians and p90s.
// Root; this checkout built (`pnpm -s turbo run build`).
// Usage: node bench/compare-commits.mjs <base-ref> [N=21]
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DOCKER, dockerEnv, timed } from './lib/cli.mjs';
import { Berth, runcSweep, unmountBelow } from './lib/engines.mjs';
import { median, quantile } from './lib/stats.mjs';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const baseRef = process.argv[2];
const N = Number(process.argv[3] ?? 21);
if (!baseRef || !Number.isInteger(N) || N < 1) {
  console.error('usage: node bench/compare-commits.mjs <base-ref> [N=21]');
  process.exit(2);
}
const log = (m) => console.log(m);
const git = (...a) => execFileSync('git', ['-C', repo, ...a], { encoding: 'utf8' }).trim();
const baseSha = git('rev-parse', '--verify', `${baseRef}^{commit}`);
const headSha = git('rev-parse', 'HEAD');
const dirty = git('status', '--porcelain', '--untracked-files=no') !== '';

const w = fs.mkdtempSync('/tmp/bb-cmp-');
fs.writeFileSync(path.join(w, 'bench.pid'), String(process.pid));
const tree = path.join(w, 'base-tree');
for (const d of ['base', 'head', 'cli-base', 'cli-head']) fs.mkdirSync(path.join(w, d));
const engines = [];
try {
  log(`base ${baseSha.slice(0, 12)}: worktree, offline install, build …`);
  git('worktree', 'add', '--detach', tree, baseSha);
  const sh = (cmd, args) => execFileSync(cmd, args, { cwd: tree, stdio: ['ignore', 'ignore', 'inherit'] });
  sh('pnpm', ['install', '--offline', '--frozen-lockfile', '--silent']);
  sh('pnpm', ['-s', 'turbo', 'run', 'build', '--output-logs=errors-only']);

  const base = new Berth(path.join(w, 'base'), tree, {});
  const head = new Berth(path.join(w, 'head'), repo, {});
  engines.push(base, head);
  for (const e of engines) await e.start(log);
  execFileSync('bash', [path.join(repo, 'scripts/build-test-image.sh'), path.join(w, 'img')], { stdio: 'ignore' });
  const env = { base: dockerEnv(base.sock, path.join(w, 'cli-base')), head: dockerEnv(head.sock, path.join(w, 'cli-head')) };
  for (const e of Object.values(env)) await timed(DOCKER, ['load', '-i', path.join(w, 'img/busybox.tar')], { env: e });

  const runs = {
    base: { env: env.base, opts: [] },
    head: { env: env.head, opts: [] },
    'head, seccomp=unconfined': { env: env.head, opts: ['--security-opt', 'seccomp=unconfined'] },
  };
  const names = Object.keys(runs);
  const series = Object.fromEntries(names.map((k) => [k, []]));
  for (let i = 0; i < N + 2; i++) {
    const order = names.map((_, j) => names[(i + j) % names.length]);
    for (const k of order) {
      const r = await timed(DOCKER, ['run', '--rm', '--network', 'none', ...runs[k].opts, 'berth-test/busybox', 'true'], { env: runs[k].env });
      if (i >= 2) series[k].push(r.ms); // the first two rounds warm both daemons up
    }
  }
  const f = (a) => `median ${median(a).toFixed(0)} ms, p90 ${quantile(a, 0.9).toFixed(0)} ms`;
  console.log(`docker run --rm over ${N} each, interleaved; base ${baseSha.slice(0, 12)}, head ${headSha.slice(0, 12)}${dirty ? ' (+ uncommitted changes)' : ''}; 1-min load ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ')[0]}`);
  for (const k of names) console.log(`  ${k.padEnd(26)} ${f(series[k])}`);
  console.log(`  head/base median ratio: ${(median(series.head) / median(series.base)).toFixed(2)} (default plugins), ${(median(series['head, seccomp=unconfined']) / median(series.base)).toFixed(2)} (seccomp=unconfined)`);
} finally {
  for (const e of engines) {
    await e.stop(log).catch((err) => log(`stop: ${err.message}`));
    for (const r of e.runcRoots()) runcSweep(r, log);
  }
  unmountBelow(w, log);
  try {
    git('worktree', 'remove', '--force', tree);
  } catch (err) {
    log(`worktree remove: ${err.message}`);
  }
  fs.rmSync(w, { recursive: true, force: true });
}
