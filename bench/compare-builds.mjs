#!/usr/bin/env node
// Is this checkout's start slower than an earlier build's? Two berthds side by side in one run:
// one built from a base ref (a temporary `git worktree` under the work dir, `pnpm install
// --offline --frozen-lockfile` from the pnpm store, then `pnpm turbo run build`, as the README
// builds; turbo 2 shares its cache between worktrees, so a ref built before is restored, keyed by
// its inputs), one from this checkout (built already: `pnpm -s turbo run build`). Each on its own
// socket, data root and exec root with the same flags and an empty daemon.json, the test image
// loaded into each. Then N interleaved rounds of `docker run --rm --network none IMAGE true`
// through the docker CLI (each round rotates which series goes first) in three series: base,
// head with its default plugins, and head with `--security-opt seccomp=unconfined` (what a new
// protection costs, told apart from the start path). Prints medians, p90s, the head/base ratios,
// the 1-min load at start and end, and for each pair a Mann–Whitney U test (two-sided) and a
// 95 % bootstrap interval of the median difference resampling whole rounds (the verdict uses
// the interval); writes compare.json. Removes the worktree, daemons, mounts and work dir at the
// end, also on failure or SIGINT/SIGTERM (killed outright: `bash bench/cleanup.sh <work dir>`,
// then `git worktree prune`).
// Root; docker CLI, runc and conmon (else it says which is missing and exits 0). Under the lock:
//   flock /tmp/<lock> node bench/compare-builds.mjs --base <git ref> [--runs N=31] [--out DIR]
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DOCKER, dockerEnv, timed } from './lib/cli.mjs';
import { Berth } from './lib/engines.mjs';
import { REPO, benchSetup, cleanupOnce, startWithTestImage } from './lib/setup.mjs';
import { bootstrapMedianDiff, mannWhitney, median, quantile } from './lib/stats.mjs';

const IMAGE = 'berth-test/busybox';
const WARMUP = 3; // rounds, not counted
const argv = process.argv.slice(2);
const baseRef = argv.includes('--base') ? argv[argv.indexOf('--base') + 1] : undefined;
const RUNS = Number(argv.includes('--runs') ? argv[argv.indexOf('--runs') + 1] : 31);
if (!baseRef || !Number.isInteger(RUNS) || RUNS < 8) {
  console.error('usage: node bench/compare-builds.mjs --base <git ref> [--runs N>=8, default 31] [--out DIR]');
  process.exit(2);
}
const onPath = (cmd) => {
  try {
    return execFileSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).trim() !== '';
  } catch {
    return false;
  }
};
const missing = [fs.existsSync(DOCKER) || onPath(DOCKER) ? null : `the docker CLI (${DOCKER}; BENCH_DOCKER=… overrides)`, onPath('runc') ? null : 'runc', onPath('conmon') ? null : 'conmon'].filter(Boolean);
if (missing.length) {
  console.log(`bench compare-builds: skipped — missing ${missing.join(', ')}`);
  process.exit(0);
}
if (!fs.existsSync(path.join(REPO, 'packages/cli/dist')) || !fs.existsSync(path.join(REPO, 'packages/daemon/dist'))) {
  console.error('bench compare-builds: this checkout is not built (pnpm -s turbo run build)');
  process.exit(2);
}
const git = (...a) => execFileSync('git', ['-C', REPO, ...a], { encoding: 'utf8' }).trim();
let baseSha;
try {
  baseSha = git('rev-parse', '--verify', '--quiet', `${baseRef}^{commit}`);
} catch {
  console.error(`bench compare-builds: --base ${baseRef} names no commit in ${REPO}`);
  process.exit(2);
}
const headSha = git('rev-parse', 'HEAD');
const dirty = git('status', '--porcelain', '--untracked-files=no') !== '';

const { opt, log, work, cliDir, loadNow } = benchSetup('compare-builds', '/tmp/bb-cmp-'); // /tmp/bb-*: bench/cleanup.sh accepts it
fs.writeFileSync(path.join(work, 'bench.pid'), `${process.pid}\n`);
const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z').replace(/^(\d{4})(\d{2})(\d{2})/, '$1-$2-$3');
const OUT = path.resolve(opt('--out', path.join(REPO, 'bench', 'results', `${stamp}-compare-builds`)));
const tree = path.join(work, 'base-tree');
for (const d of ['base', 'head']) fs.mkdirSync(path.join(work, d));
const base = Object.assign(new Berth(path.join(work, 'base'), tree, {}), { name: 'base' });
const head = Object.assign(new Berth(path.join(work, 'head'), REPO, {}), { name: 'head' });
const engines = [];

const cleanup = cleanupOnce(engines, {
  work,
  log,
  after: () => {
    try {
      if (fs.existsSync(tree)) git('worktree', 'remove', '--force', tree);
    } catch (err) {
      log(`worktree remove: ${err.message}`);
      fs.rmSync(tree, { recursive: true, force: true, maxRetries: 3 });
    }
    try {
      git('worktree', 'prune');
    } catch (err) {
      log(`worktree prune: ${err.message}`);
    }
  },
});

/** Installs the base tree's dependencies offline; returns how (the fallback says why it was needed). */
function installBase() {
  const run = (args) => execFileSync('pnpm', args, { cwd: tree, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    run(['install', '--offline', '--frozen-lockfile', '--silent']);
    return 'pnpm install --offline --frozen-lockfile';
  } catch (err) {
    const why = `${err.stderr ?? ''}${err.stdout ?? ''}`.trim().split('\n').slice(-3).join(' | ');
    log(`offline frozen install failed (${why}); trying without --frozen-lockfile, still offline`);
    run(['install', '--offline', '--silent']);
    return `pnpm install --offline (the frozen install failed: ${why})`;
  }
}

const series = [
  { name: 'base', engine: base, opts: [] },
  { name: 'head default', engine: head, opts: [] },
  { name: 'head seccomp=unconfined', engine: head, opts: ['--security-opt', 'seccomp=unconfined'] },
];
const R = {
  date: new Date().toISOString(),
  command: `node bench/compare-builds.mjs ${argv.join(' ')}`,
  machine: `${os.cpus().length} CPUs, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, Linux ${os.release()}`,
  base: { ref: baseRef, sha: baseSha, subject: git('log', '-1', '--format=%s', baseSha).slice(0, 200) },
  head: { sha: headSha, uncommittedChanges: dirty },
  image: IMAGE,
  runs: RUNS,
  warmupRounds: WARMUP,
  statistics: 'Mann–Whitney U (two-sided, normal approximation with tie and continuity corrections); 95 % percentile bootstrap interval of median(a) − median(b), 10,000 resamples of whole rounds (paired), seed 1; verdict from the interval',
};
try {
  log(`base ${baseSha.slice(0, 12)} (${baseRef}): worktree, offline install, build …`);
  git('worktree', 'add', '--detach', tree, baseSha);
  R.base.install = installBase();
  execFileSync('pnpm', ['-s', 'turbo', 'run', 'build', '--output-logs=errors-only'], { cwd: tree, stdio: ['ignore', 'ignore', 'inherit'] });
  engines.push(base, head);
  await startWithTestImage(engines, { work, log, envOf: (e) => dockerEnv(e.sock, cliDir) });
  R.base.version = base.version;
  R.head.version = head.version;
  const samples = Object.fromEntries(series.map((s) => [s.name, []]));
  const run = (s) => timed(DOCKER, ['run', '--rm', '--network', 'none', ...s.opts, IMAGE, 'true'], { env: dockerEnv(s.engine.sock, cliDir) }); // rejects on failure
  for (let i = 0; i < WARMUP; i++) for (const s of series) await run(s);
  const load0 = loadNow();
  for (let i = 0; i < RUNS; i++) {
    for (let j = 0; j < series.length; j++) {
      const s = series[(i + j) % series.length];
      samples[s.name].push((await run(s)).ms);
    }
  }
  const load1 = loadNow();
  R.load = { start: Number(load0), end: Number(load1) };
  R.series = Object.fromEntries(series.map((s) => [s.name, { opts: s.opts, median: median(samples[s.name]), p90: quantile(samples[s.name], 0.9), samples: samples[s.name] }]));
  const compare = (a, b) => {
    const mw = mannWhitney(samples[a], samples[b]);
    const ci = bootstrapMedianDiff(samples[a], samples[b], { paired: true });
    const verdict = ci.lo > 0 ? `${a} slower` : ci.hi < 0 ? `${a} faster` : 'no measurable difference';
    return { a, b, ratio: median(samples[a]) / median(samples[b]), medianDiffMs: ci.diff, ci95Ms: [ci.lo, ci.hi], mannWhitneyU: mw.u, mannWhitneyP: mw.p, verdict };
  };
  R.comparisons = [compare('head default', 'base'), compare('head seccomp=unconfined', 'base'), compare('head default', 'head seccomp=unconfined')];

  const f = (v) => v.toFixed(1);
  console.log(`docker run --rm --network none ${IMAGE} true, ${RUNS} interleaved rounds after ${WARMUP} warm-up rounds; 1-min load ${load0} at start, ${load1} at end`);
  console.log(`base ${baseSha.slice(0, 12)} (${baseRef}): ${base.version}; head ${headSha.slice(0, 12)}${dirty ? ' + uncommitted changes' : ''}: ${head.version}`);
  for (const s of series) console.log(`  ${s.name.padEnd(24)} median ${f(R.series[s.name].median)} ms, p90 ${f(R.series[s.name].p90)} ms`);
  for (const c of R.comparisons) {
    console.log(`  ${`${c.a} vs ${c.b}:`.padEnd(48)} ratio ${c.ratio.toFixed(3)}, median diff ${f(c.medianDiffMs)} ms (95 % CI ${f(c.ci95Ms[0])} … ${f(c.ci95Ms[1])}), Mann–Whitney p ${c.mannWhitneyP < 0.001 ? '< 0.001' : c.mannWhitneyP.toFixed(3)} → ${c.verdict}`);
  }
  fs.mkdirSync(OUT, { recursive: true });
  fs.writeFileSync(path.join(OUT, 'compare.json'), `${JSON.stringify(R, null, 1)}\n`);
  log(`wrote ${path.relative(process.cwd(), path.join(OUT, 'compare.json'))}`);
} finally {
  await cleanup();
}
