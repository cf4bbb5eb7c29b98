#!/usr/bin/env node
// Does `node --cpu-prof` slow berthd down? Two berthds (one profiled) on their own roots,
// N interleaved `docker run --rm --network none IMAGE true` each; prints both medians.
// Root; berth built. Usage: node bench/profiler-overhead.mjs [N=15]
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DOCKER, dockerEnv, timed } from './lib/cli.mjs';
import { Berth, runcSweep, unmountBelow } from './lib/engines.mjs';
import { median } from './lib/stats.mjs';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const N = Number(process.argv[2] ?? 15);
const w = fs.mkdtempSync('/tmp/bb-');
fs.writeFileSync(path.join(w, 'bench.pid'), String(process.pid));
const log = (m) => console.log(m);
for (const d of ['a', 'b', 'cli']) fs.mkdirSync(path.join(w, d));
const prof = new Berth(path.join(w, 'a'), repo, { profileDir: path.join(w, 'prof') });
const plain = new Berth(path.join(w, 'b'), repo, {});
try {
  await prof.start(log);
  await plain.start(log);
  execFileSync('bash', [path.join(repo, 'scripts/build-test-image.sh'), path.join(w, 'img')], { stdio: 'ignore' });
  for (const e of [prof, plain]) await timed(DOCKER, ['load', '-i', path.join(w, 'img/busybox.tar')], { env: dockerEnv(e.sock, path.join(w, 'cli')) });
  const res = { profiled: [], plain: [] };
  for (let i = 0; i < N + 2; i++) {
    const pair = [['profiled', prof], ['plain', plain]];
    for (const [k, e] of i % 2 ? pair : pair.reverse()) {
      const r = await timed(DOCKER, ['run', '--rm', '--network', 'none', 'berth-test/busybox', 'true'], { env: dockerEnv(e.sock, path.join(w, 'cli')) });
      if (i >= 2) res[k].push(r.ms);
    }
  }
  console.log(`docker run median over ${N}: berthd under --cpu-prof ${median(res.profiled).toFixed(0)} ms, without ${median(res.plain).toFixed(0)} ms`);
} finally {
  await prof.stop(log);
  await plain.stop(log);
  for (const e of [prof, plain]) for (const r of e.runcRoots()) runcSweep(r, log);
  unmountBelow(w, log);
  fs.rmSync(w, { recursive: true, force: true });
}
