#!/usr/bin/env node
// What does --userns-remap cost a start? One berthd started with --userns-remap (a remap user
// in this run's own passwd/group/subuid/subgid files, BERTH_USERNS_* env), N interleaved
// `docker run --rm --network none IMAGE true` remapped (the default) and with `--userns=host`
// (no user namespace, as every start was before the plugin); prints both medians and p90s and
// the rootfs strategy the plugin's probe chose (idmap: no layer copy).
// Root; berth built. Usage: node bench/userns-overhead.mjs [N=21]
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
fs.chmodSync(w, 0o711); // the remapped root must get through (dockerd's rule above the data root)
fs.writeFileSync(path.join(w, 'bench.pid'), String(process.pid));
const log = (m) => console.log(m);
for (const d of ['a', 'cli', 'ids']) fs.mkdirSync(path.join(w, d));
const ids = (name, text) => {
  fs.writeFileSync(path.join(w, 'ids', name), text);
  process.env[`BERTH_USERNS_${name.toUpperCase()}`] = path.join(w, 'ids', name);
};
ids('passwd', 'berth-bench:x:4322:4322::/nonexistent:/bin/false\n');
ids('group', 'berth-bench:x:4322:\n');
ids('subuid', 'berth-bench:500000:65536\n');
ids('subgid', 'berth-bench:500000:65536\n');
fs.chmodSync(path.join(w, 'a'), 0o711);
const berth = new Berth(path.join(w, 'a'), repo, { daemonJson: { 'userns-remap': 'berth-bench' } });
try {
  await berth.start(log);
  execFileSync('bash', [path.join(repo, 'scripts/build-test-image.sh'), path.join(w, 'img')], { stdio: 'ignore' });
  const env = dockerEnv(berth.sock, path.join(w, 'cli'));
  await timed(DOCKER, ['load', '-i', path.join(w, 'img/busybox.tar')], { env });
  const series = { remapped: [], host: [] };
  const opts = { remapped: [], host: ['--userns', 'host'] };
  for (let i = 0; i < N + 2; i++) {
    const order = i % 2 ? ['remapped', 'host'] : ['host', 'remapped'];
    for (const k of order) {
      const r = await timed(DOCKER, ['run', '--rm', '--network', 'none', ...opts[k], 'berth-test/busybox', 'true'], { env }); // rejects on failure
      if (i >= 2) series[k].push(r.ms);
    }
  }
  // the strategy the probe chose: idmapped layer mounts exist while a remapped container runs
  await timed(DOCKER, ['run', '-d', '--name', 'probe', '--network', 'none', 'berth-test/busybox', 'sleep', '30'], { env });
  const chosen = fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(`${berth.dir}/data/containers/`) ? 'idmap' : 'chown';
  await timed(DOCKER, ['rm', '-f', 'probe'], { env });
  const f = (a) => `median ${median(a).toFixed(0)} ms, p90 ${quantile(a, 0.9).toFixed(0)} ms`;
  console.log(`docker run over ${N} each (rootfs strategy: ${chosen}): remapped ${f(series.remapped)}; --userns=host ${f(series.host)}; ratio of medians ${(median(series.remapped) / median(series.host)).toFixed(2)}`);
} finally {
  await berth.stop(log);
  for (const r of berth.runcRoots()) runcSweep(r, log);
  unmountBelow(w, log);
  fs.rmSync(w, { recursive: true, force: true });
}
