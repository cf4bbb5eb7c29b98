#!/usr/bin/env node
// What the seccomp filter costs a start, berth beside dockerd in one interleaved run: each
// round runs `docker run --rm --network none IMAGE true` once per series, rotating which goes
// first — berth with the default profile (the plugin's cached filter; its arch list follows the
// kernel's syscall ABIs), berth with Docker's profile and dockerd's arch list (x86_64 + x86 +
// x32 on amd64, given as a profile file that lists `architectures` itself, which the plugin keeps
// as written), berth `seccomp=unconfined`, dockerd default, dockerd `seccomp=unconfined`.
// Prints each series' median and p90 and the 1-min load at start and end.
// Root; berth built; Debian's docker.io for the reference. Run it under the bench lock:
//   flock /tmp/<lock> node bench/seccomp-overhead.mjs [--runs N=15]
import fs from 'node:fs';
import path from 'node:path';
import { DOCKER, dockerEnv, timed } from './lib/cli.mjs';
import { Berth, Reference, runcSweep, unmountBelow } from './lib/engines.mjs';
import { benchSetup, startWithTestImage } from './lib/setup.mjs';
import { median, quantile } from './lib/stats.mjs';

const { repo, opt, log, work, cliDir, loadNow } = benchSetup('seccomp-overhead', '/tmp/bso-');
const RUNS = Number(opt('--runs', 15));
const IMAGE = 'berth-test/busybox';
for (const d of ['a', 'ref']) fs.mkdirSync(path.join(work, d));
const berth = new Berth(path.join(work, 'a'), repo, {});
const ref = new Reference(path.join(work, 'ref'));

// Docker's profile with the arch list dockerd hands runc on amd64, as a file for the CLI
const profile = JSON.parse(fs.readFileSync(path.join(repo, 'plugins/seccomp/profiles/default.json'), 'utf8'));
const { archMap, ...rest } = profile;
const amd64 = archMap.find((a) => a.architecture === 'SCMP_ARCH_X86_64');
const dockerdArches = path.join(work, 'dockerd-arches.json');
fs.writeFileSync(dockerdArches, JSON.stringify({ ...rest, architectures: [amd64.architecture, ...amd64.subArchitectures] }));

const series = [
  { name: 'berth default', engine: berth, opts: [] },
  { name: "berth, dockerd's arches", engine: berth, opts: ['--security-opt', `seccomp=${dockerdArches}`] },
  { name: 'berth unconfined', engine: berth, opts: ['--security-opt', 'seccomp=unconfined'] },
  { name: 'dockerd default', engine: ref, opts: [] },
  { name: 'dockerd unconfined', engine: ref, opts: ['--security-opt', 'seccomp=unconfined'] },
];
const samples = Object.fromEntries(series.map((s) => [s.name, []]));
try {
  await startWithTestImage([berth, ref], { work, log, envOf: (e) => dockerEnv(e.sock, cliDir) });
  const run = (s) => timed(DOCKER, ['run', '--rm', '--network', 'none', ...s.opts, IMAGE, 'true'], { env: dockerEnv(s.engine.sock, cliDir) }); // rejects on failure
  for (const s of series) await run(s); // warm-up
  const load0 = loadNow();
  for (let i = 0; i < RUNS; i++) {
    for (let j = 0; j < series.length; j++) {
      const s = series[(i + j) % series.length];
      samples[s.name].push((await run(s)).ms);
    }
  }
  console.log(`docker run --rm --network none ${IMAGE} true, ${RUNS} interleaved rounds; 1-min load ${load0} at start, ${loadNow()} at end`);
  for (const s of series) console.log(`  ${s.name.padEnd(26)} median ${median(samples[s.name]).toFixed(0)} ms, p90 ${quantile(samples[s.name], 0.9).toFixed(0)} ms`);
} finally {
  for (const e of [berth, ref]) {
    await e.stop(log).catch((err) => log(`stop ${e.name}: ${err.message}`));
    for (const r of e.runcRoots()) runcSweep(r, log);
  }
  unmountBelow(work, log);
  fs.rmSync(work, { recursive: true, force: true });
}
