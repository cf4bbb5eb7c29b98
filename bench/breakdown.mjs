// Per-hook breakdown of a start on its own, without the rest of the bench (what phase 6 of
// bench.mjs measures): `node bench/breakdown.mjs [runs]` as root after a build. Uses a temp
// dir; loads the test image with the docker CLI; prints the medians.
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { InProcessBerth } from './lib/inproc.mjs';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const runs = Number(process.argv[2] ?? 15);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bbd-'));
const docker = process.env.BENCH_DOCKER ?? '/usr/local/bin/docker';
const ib = new InProcessBerth({ repo, dir, rootfsDir: path.join(dir, 'roots'), image: 'berth-test/busybox', log: (m) => console.error(m) });
fs.mkdirSync(ib.rootfsDir);
try {
  await ib.start();
  const img = path.join(dir, 'img');
  execFileSync('bash', [path.join(repo, 'scripts/build-test-image.sh'), img], { stdio: 'ignore' });
  // Not execFileSync: the daemon that answers runs in this process.
  await promisify(execFile)(docker, ['load', '-i', path.join(img, 'busybox.tar')], { env: { ...process.env, DOCKER_HOST: `unix://${ib.sock}`, DOCKER_CONFIG: path.join(dir, 'cli') } });
  const r = await ib.hookBreakdown(runs);
  const f = (x) => (x === undefined ? '-' : x.toFixed(1));
  for (const s of [...r.segments, ...r.backendSteps]) console.log(`${s.step.padEnd(48)} ${f(s.median).padStart(7)} ${f(s.p90).padStart(7)}`);
  for (const t of r.taps) console.log(`  tap ${`${t.hook}/${t.plugin}`.padEnd(42)} ${f(t.median).padStart(7)}`);
} finally {
  await ib.stop().catch((e) => console.error(e));
  fs.rmSync(dir, { recursive: true, force: true });
}
process.exit(0); // as bench.mjs: do not wait for stray handles of the tools used above
