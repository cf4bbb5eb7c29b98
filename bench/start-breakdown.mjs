#!/usr/bin/env node
// Where `docker run --rm --network none IMAGE true` spends its time above the physical floor
// (issue 18): the docker CLI alone plus a raw `runc run` of the same bundle. One berthd process
// (default built-ins, Docker's seccomp profile) and, in one interleaved series, each round
// rotating who goes first: `docker run --rm` through the CLI; `docker run -d --rm` (the CLI
// returns after create and start: no attach, no wait for the removal); the CLI alone (`docker ps -q`:
// process start, ping, one request); raw `runc run` of the config.json berth builds for this
// container (its seccomp filter included; own cgroup path per run); the same container over the
// API without the CLI (create, wait, start, delete). Then the per-hook breakdown of a start in
// an in-process berthd (bench/lib/inproc.mjs; as bench/breakdown.mjs) with the OCI backend's own
// step timings. Prints the medians, the p90s and the 1-min load at start and end.
// Root; berth built. Run it under the bench lock:
//   flock /tmp/<lock> node bench/start-breakdown.mjs [--runs N=21]
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { DOCKER, dockerEnv, timed } from './lib/cli.mjs';
import { Berth, runcSweep, unmountBelow } from './lib/engines.mjs';
import { InProcessBerth } from './lib/inproc.mjs';
import { benchSetup, startWithTestImage } from './lib/setup.mjs';
import { median, ms, now, quantile } from './lib/stats.mjs';

const { repo, opt, log, work, cliDir, loadNow } = benchSetup('start-breakdown', '/tmp/bsb-');
const RUNS = Number(opt('--runs', 21));
const IMAGE = 'berth-test/busybox';
fs.mkdirSync(path.join(work, 'a'));
const berth = new Berth(path.join(work, 'a'), repo, {});
const inproc = new InProcessBerth({ repo, dir: path.join(work, 'inproc'), rootfsDir: path.join(work, 'inproc', 'roots'), image: IMAGE, log });
const rawRoot = path.join(work, 'runc-raw');
const bundle = path.join(work, 'bundle');
const env = dockerEnv(berth.sock, cliDir);

async function apiRun() {
  const t = now();
  const { Id } = await berth.api.call('POST', '/containers/create', { Image: IMAGE, Cmd: ['true'], HostConfig: { NetworkMode: 'none' } });
  const waited = berth.api.call('POST', `/containers/${Id}/wait?condition=next-exit`);
  await berth.api.call('POST', `/containers/${Id}/start`);
  const w = await waited;
  if (w.StatusCode !== 0) throw new Error(`true exited ${w.StatusCode}`);
  await berth.api.call('DELETE', `/containers/${Id}`);
  return ms(t, now());
}

try {
  fs.mkdirSync(inproc.dir, { recursive: true });
  fs.mkdirSync(inproc.rootfsDir);
  fs.mkdirSync(bundle);
  await startWithTestImage([berth], { work, log, envOf: () => env });
  await inproc.start();
  // Not execFileSync: the in-process daemon answers in this process.
  await promisify(execFile)(DOCKER, ['load', '-i', path.join(work, 'image', 'busybox.tar')], { env: dockerEnv(inproc.sock, cliDir) });
  const template = await inproc.templateSpec();
  const rootfs = path.join(work, 'rootfs');
  execFileSync('bash', [path.join(repo, 'scripts/build-test-rootfs.sh'), rootfs], { stdio: 'ignore' });
  const rawRun = (id) => {
    const s = JSON.parse(JSON.stringify(template.spec));
    s.root = { ...s.root, path: rootfs };
    if (s.linux?.cgroupsPath) s.linux.cgroupsPath = s.linux.cgroupsPath.split(template.id).join(id);
    fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(s));
    return timed('runc', ['--root', rawRoot, 'run', '--bundle', bundle, id]);
  };
  const series = {
    'docker run --rm (CLI → berthd)': () => timed(DOCKER, ['run', '--rm', '--network', 'none', IMAGE, 'true'], { env }).then((r) => r.ms),
    'docker run -d --rm (returns after start)': () => timed(DOCKER, ['run', '-d', '--rm', '--network', 'none', IMAGE, 'true'], { env }).then((r) => r.ms),
    'CLI alone (docker ps -q)': () => timed(DOCKER, ['ps', '-q'], { env }).then((r) => r.ms),
    'raw runc run, same bundle': (i) => rawRun(`raw-${i}`).then((r) => r.ms),
    'API run (create, wait, start, delete)': apiRun,
  };
  const names = Object.keys(series);
  for (const n of names) await series[n](-1); // warm-up
  const samples = Object.fromEntries(names.map((n) => [n, []]));
  const load0 = loadNow();
  for (let i = 0; i < RUNS; i++) {
    for (let j = 0; j < names.length; j++) {
      const n = names[(i + j) % names.length];
      samples[n].push(await series[n](i));
    }
  }
  const load1 = loadNow();
  const f = (x) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(1));
  console.log(`${RUNS} interleaved rounds; 1-min load ${load0} at start, ${load1} at end`);
  for (const n of names) console.log(`  ${n.padEnd(44)} median ${f(median(samples[n])).padStart(6)} ms, p90 ${f(quantile(samples[n], 0.9)).padStart(6)} ms`);
  const floor = median(samples[names[2]]) + median(samples[names[3]]);
  console.log(`  floor (CLI alone + raw runc run)             ${f(floor).padStart(13)} ms; docker run above it ${f(median(samples[names[0]]) - floor)} ms`);
  const r = await inproc.hookBreakdown(RUNS);
  console.log(`per-hook breakdown, in-process berthd, ${r.runs} starts; 1-min load ${loadNow()} at end`);
  for (const s of [...r.segments, ...r.backendSteps]) console.log(`  ${s.step.padEnd(48)} ${f(s.median).padStart(7)} ${f(s.p90).padStart(7)}`);
  for (const t of r.taps) console.log(`    tap ${`${t.hook}/${t.plugin}`.padEnd(42)} ${f(t.median).padStart(7)}`);
} finally {
  await inproc.stop().catch((err) => log(`stop in-process berthd: ${err.message}`));
  await berth.stop(log).catch((err) => log(`stop berthd: ${err.message}`));
  for (const root of [...berth.runcRoots(), ...fs.readdirSync(work).includes('runc-raw') ? [rawRoot] : []]) runcSweep(root, log);
  unmountBelow(work, log);
  fs.rmSync(work, { recursive: true, force: true });
}
process.exit(0); // as bench/breakdown.mjs: do not wait for stray handles of the tools used above
