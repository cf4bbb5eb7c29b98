#!/usr/bin/env node
// Issue-15 start cost before/after: `docker run --rm IMAGE true` on the default bridge on three
// engines in one interleaved series (each round rotates who goes first) — berthd built from
// another checkout (--before DIR: a built tree, e.g. `git archive REV | tar -x -C DIR`,
// `pnpm install --offline`, `pnpm turbo run build`), berthd of this tree, and Debian's dockerd
// (no iptables, no NAT) — so both berths meet the same load. Each engine has its own bridge in
// 198.18.0.0/15; the bridges are removed and ip_forward is put back afterwards, also on failure.
//
//   node bench/network-start.mjs --before DIR [--runs N] [--out FILE.json]
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DOCKER, dockerEnv, timed } from './lib/cli.mjs';
import { Berth, Reference, unmountBelow } from './lib/engines.mjs';
import { median, quantile } from './lib/stats.mjs';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const opt = (f, d) => (argv.includes(f) ? argv[argv.indexOf(f) + 1] : d);
const RUNS = Number(opt('--runs', 21));
const BEFORE = opt('--before', null);
const IMAGE = 'berth-test/busybox';
const FORWARD = '/proc/sys/net/ipv4/ip_forward';
const BRIDGES = ['bsbef0', 'bsaft0', 'docker0'];

if (process.getuid() !== 0) {
  console.error('bench network-start: needs root');
  process.exit(2);
}
if (!BEFORE || !fs.existsSync(path.join(BEFORE, 'packages/cli/bin/berthd'))) {
  console.error('bench network-start: --before DIR must name a built berth tree (packages/cli/bin/berthd)');
  process.exit(2);
}
const work = fs.mkdtempSync('/tmp/bns-');
const cliDir = path.join(work, 'cli');
fs.mkdirSync(cliDir);
const forward = fs.readFileSync(FORWARD, 'utf8');
const sub = (n) => {
  fs.mkdirSync(path.join(work, n));
  return path.join(work, n);
};
const before = Object.assign(new Berth(sub('before'), path.resolve(BEFORE), { daemonJson: { bridge: BRIDGES[0], bip: '198.18.205.1/24' } }), { name: 'before' });
const after = Object.assign(new Berth(sub('after'), repo, { daemonJson: { bridge: BRIDGES[1], bip: '198.18.206.1/24' } }), { name: 'after' });
const ref = new Reference(sub('ref'), { networkArgs: ['--iptables=false', '--ip6tables=false', '--ip-forward=false', '--ip-masq=false', '--bip=198.18.201.1/24'] });
const engines = [before, after, ref];
const samples = Object.fromEntries(engines.map((e) => [e.name, []]));
const loads = [];
const R = { date: new Date().toISOString(), runs: RUNS, before: path.resolve(BEFORE), machine: `${os.cpus().length} CPUs, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, Linux ${os.release()}`, loads };
try {
  const imageDir = path.join(work, 'image');
  execFileSync('bash', [path.join(repo, 'scripts/build-test-image.sh'), imageDir], { stdio: 'ignore' });
  for (const e of engines) {
    await e.start(console.log);
    await timed(DOCKER, ['load', '-i', path.join(imageDir, 'busybox.tar')], { env: dockerEnv(e.sock, cliDir) });
    await timed(DOCKER, ['run', '--rm', IMAGE, 'true'], { env: dockerEnv(e.sock, cliDir) }); // warm-up
  }
  for (let i = 0; i < RUNS; i++) {
    for (let j = 0; j < engines.length; j++) {
      const e = engines[(i + j) % engines.length];
      samples[e.name].push((await timed(DOCKER, ['run', '--rm', IMAGE, 'true'], { env: dockerEnv(e.sock, cliDir) })).ms);
    }
    loads.push(os.loadavg()[0]);
  }
  for (const [n, v] of Object.entries(samples)) R[n] = { median: median(v), p90: quantile(v, 0.9), samples: v };
  R.ratio = { before: R.before.median / R.dockerd.median, after: R.after.median / R.dockerd.median };
  console.log(JSON.stringify(R, null, 1));
  const out = opt('--out', null);
  if (out) fs.writeFileSync(out, `${JSON.stringify(R, null, 1)}\n`);
} finally {
  for (const e of engines) await e.stop(console.log).catch((err) => console.log(`stop ${e.name}: ${err.message}`));
  unmountBelow(work, console.log);
  for (const b of BRIDGES) {
    try {
      execFileSync('ip', ['link', 'del', b], { stdio: 'ignore' });
    } catch {
      // not made, or gone with its daemon
    }
  }
  fs.writeFileSync(FORWARD, forward);
  fs.rmSync(work, { recursive: true, force: true });
}
