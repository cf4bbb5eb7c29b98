#!/usr/bin/env node
// What does the seccomp plugin cost a start? One berthd, N interleaved
// `docker run --rm --network none IMAGE true` with the default profile (the plugin's cached
// filter, installed by runc) and with `--security-opt seccomp=unconfined` (no filter, as every
// start was before the plugin); prints both medians and p90s.
// Root; berth built. Usage: node bench/seccomp-overhead.mjs [N=21]
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DOCKER, dockerEnv, timed } from './lib/cli.mjs';
import { Berth, runcSweep, unmountBelow } from './lib/engines.mjs';
import { median, quantile } from './lib/stats.mjs';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const N = Number(process.argv[2] ?? 21);
const w = fs.mkdtempSync('/tmp/bb-');
fs.writeFileSync(path.join(w, 'bench.pid'), String(process.pid));
const log = (m) => console.log(m);
for (const d of ['a', 'cli']) fs.mkdirSync(path.join(w, d));
const berth = new Berth(path.join(w, 'a'), repo, {});
try {
  await berth.start(log);
  execFileSync('bash', [path.join(repo, 'scripts/build-test-image.sh'), path.join(w, 'img')], { stdio: 'ignore' });
  const env = dockerEnv(berth.sock, path.join(w, 'cli'));
  await timed(DOCKER, ['load', '-i', path.join(w, 'img/busybox.tar')], { env });
  const series = { default: [], unconfined: [] };
  const opts = { default: [], unconfined: ['--security-opt', 'seccomp=unconfined'] };
  for (let i = 0; i < N + 2; i++) {
    const order = i % 2 ? ['default', 'unconfined'] : ['unconfined', 'default'];
    for (const k of order) {
      const r = await timed(DOCKER, ['run', '--rm', '--network', 'none', ...opts[k], 'berth-test/busybox', 'true'], { env }); // rejects on failure
      if (i >= 2) series[k].push(r.ms);
    }
  }
  const f = (a) => `median ${median(a).toFixed(0)} ms, p90 ${quantile(a, 0.9).toFixed(0)} ms`;
  console.log(`docker run over ${N} each: default seccomp profile ${f(series.default)}; seccomp=unconfined ${f(series.unconfined)}`);
} finally {
  await berth.stop(log);
  for (const r of berth.runcRoots()) runcSweep(r, log);
  unmountBelow(w, log);
  fs.rmSync(w, { recursive: true, force: true });
}
