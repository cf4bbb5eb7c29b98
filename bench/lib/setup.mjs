// The opening the side-by-side benches share (build.mjs, network.mjs): their `--flag value`
// options, the root check, a log line stamped with the seconds since the start, a work dir with
// the docker CLI's own config dir, the load average recorded at each measurement, and the test
// image built once and loaded into each engine as it starts, and the teardown that runs once, at
// the end or on SIGINT/SIGTERM.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DOCKER, timed } from './cli.mjs';
import { runcSweep, unmountBelow } from './engines.mjs';

/** The repository's root (bench/lib/../..). */
export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * Starts a bench called `name` (its log prefix): exits 2 unless root; makes the work dir
 * (`fs.mkdtemp(workPrefix)`, the bench removes it at its end) with `cli/` for DOCKER_CONFIG.
 * `opt(flag, default)` reads `--flag value` from the command line; `loadNow()` records the
 * 1-minute load average in `loads` and returns it formatted for the log.
 */
export function benchSetup(name, workPrefix) {
  const argv = process.argv.slice(2);
  const opt = (f, d) => (argv.includes(f) ? argv[argv.indexOf(f) + 1] : d);
  if (process.getuid() !== 0) {
    console.error(`bench ${name}: needs root`);
    process.exit(2);
  }
  const t00 = Date.now();
  const log = (m) => console.log(`[${name} ${((Date.now() - t00) / 1000).toFixed(0).padStart(4)}s] ${m}`);
  const work = fs.mkdtempSync(workPrefix);
  const cliDir = path.join(work, 'cli');
  fs.mkdirSync(cliDir);
  const loads = [];
  const loadNow = () => {
    const l = os.loadavg()[0];
    loads.push(l);
    return l.toFixed(1);
  };
  return { repo: REPO, opt, log, work, cliDir, loads, loadNow };
}

/** Builds the test image into `work/image` and starts each engine with it loaded (`envOf(e)`: the CLI's env for e). */
export async function startWithTestImage(engines, { work, log, envOf }) {
  const imageDir = path.join(work, 'image');
  execFileSync('bash', [path.join(REPO, 'scripts/build-test-image.sh'), imageDir], { stdio: 'ignore' });
  for (const e of engines) {
    await e.start(log);
    await timed(DOCKER, ['load', '-i', path.join(imageDir, 'busybox.tar')], { env: envOf(e) });
  }
}

/**
 * The benches' teardown, run once however it is reached (the end, a failure, SIGINT/SIGTERM —
 * then the process exits 130): `before()` (the bench's own, e.g. closing its servers), each
 * engine stopped and its runc root swept, mounts below `work` undone, `after()` (e.g. a git
 * worktree removed), the work dir removed. Returns the function; calling it again returns the
 * same promise.
 */
export function cleanupOnce(engines, { work, log, before = () => {}, after = () => {} }) {
  let cleaning;
  const cleanup = () => {
    cleaning ??= (async () => {
      await before();
      for (const e of engines) {
        await e.stop(log).catch((err) => log(`stop ${e.name}: ${err.message}`));
        for (const root of e.runcRoots()) runcSweep(root, log);
      }
      unmountBelow(work, log);
      await after();
      fs.rmSync(work, { recursive: true, force: true, maxRetries: 3 });
    })();
    return cleaning;
  };
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.once(sig, () => {
      log(`${sig}: cleaning up`);
      cleanup().finally(() => process.exit(130));
    });
  }
  return cleanup;
}
