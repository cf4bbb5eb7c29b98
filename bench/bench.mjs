#!/usr/bin/env node
// Issue-6 benchmark: berthd side by side with Debian's dockerd (on its own containerd) and
// raw `runc run`, interleaved in one run. Started by bench/run.sh (which installs docker.io
// and builds berth); see bench/README.md. Needs root.
//
//   node bench/bench.mjs [--quick] [--runs N] [--out DIR] [--no-profile] [--keep]
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { gzipSync } from 'node:zlib';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DOCKER, dockerEnv, timed } from './lib/cli.mjs';
import { Berth, Reference, findRuncRoots, runcSweep, unmountBelow } from './lib/engines.mjs';
import { load, pool } from './lib/http.mjs';
import { InProcessBerth } from './lib/inproc.mjs';
import { sumMemory } from './lib/procs.mjs';
import { profileMarkdown, summarizeProfile } from './lib/profile.mjs';
import { fmtMiB, fmtMs, median, ms, now, quantile, summary } from './lib/stats.mjs';
import { cdfChart } from './lib/svg.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..');
const argv = process.argv.slice(2);
const flag = (f) => argv.includes(f);
const opt = (f, d) => (argv.includes(f) ? argv[argv.indexOf(f) + 1] : d);
const QUICK = flag('--quick');
const P = {
  runs: Number(opt('--runs', QUICK ? 5 : 25)),
  warmup: QUICK ? 1 : 3,
  batch: QUICK ? 10 : 50,
  batchRounds: QUICK ? 1 : 2,
  inFlight: 8,
  psContainers: Number(opt('--ps-containers', QUICK ? 100 : 1000)),
  psRuns: QUICK ? 3 : 15,
  inspectConnections: 200,
  inspectMs: QUICK ? 2000 : 5000,
  inspectRounds: 2,
  memContainers: QUICK ? 10 : 100,
  hookRuns: QUICK ? 5 : 20,
};
const IMAGE = 'berth-test/busybox';
const profile = !flag('--no-profile');
const keep = flag('--keep');
const stamp = new Date().toISOString().replace(/[:]/g, '').replace(/\..*/, 'Z');
const outDir = path.resolve(opt('--out', path.join(repo, 'bench/results', stamp)));

if (process.getuid() !== 0) {
  console.error('bench: needs root (runc, dockerd, berthd)');
  process.exit(2);
}

const t00 = Date.now();
const log = (m) => console.log(`[bench ${((Date.now() - t00) / 1000).toFixed(0).padStart(4)}s] ${m}`);
// Short work dir: unix socket paths must stay under 108 bytes.
const work = fs.mkdtempSync('/tmp/bb-');
fs.mkdirSync(outDir, { recursive: true });
fs.writeFileSync(path.join(work, 'bench.pid'), String(process.pid));
const cliDir = path.join(work, 'cli');
fs.mkdirSync(cliDir);
const profDir = path.join(work, 'prof');
const ref = new Reference(work);
const berth = new Berth(work, repo, { profileDir: profile ? profDir : null });
const rawRoot = path.join(work, 'runc-root');
const inproc = new InProcessBerth({ repo, dir: path.join(work, 'inproc'), rootfsDir: berth.rootfsDir, image: 'berth-test/busybox', log });
const loadAvg = [os.loadavg()];

// ------------------------------------------------------------------ cleanup, always
let cleaning = null;
function cleanup() {
  cleaning ??= (async () => {
    log('cleanup: stopping engines, removing containers, unmounting');
    try {
      await inproc.stop();
    } catch (err) {
      log(`cleanup: stopping the in-process berthd: ${err.message}`);
    }
    for (const e of [berth, ref]) {
      try {
        await e.stop(log);
      } catch (err) {
        log(`cleanup: stopping ${e.name}: ${err.message}`);
      }
    }
    for (const root of [...berth.runcRoots(), ...findRuncRoots(inproc.execRoot), ...ref.runcRoots(), rawRoot]) runcSweep(root, log);
    unmountBelow(work, log);
    // berthd writes its CPU profile when it exits: keep it with the results.
    const prof = fs.existsSync(profDir) ? fs.readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile')) : [];
    if (prof.length) fs.copyFileSync(path.join(profDir, prof[0]), path.join(outDir, 'berthd.cpuprofile'));
    if (!keep) fs.rmSync(work, { recursive: true, force: true, maxRetries: 3 });
    else log(`kept work dir ${work}`);
  })();
  return cleaning;
}
let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    if (interrupted) return;
    interrupted = true;
    log(`${sig}: cleaning up`);
    cleanup().finally(() => process.exit(130));
  });
}

// ------------------------------------------------------------------ helpers
function extractRootfs(tarball, dest) {
  const tmp = path.join(work, 'image-x');
  fs.mkdirSync(tmp, { recursive: true });
  execFileSync('tar', ['-xf', tarball, '-C', tmp]);
  const manifest = JSON.parse(fs.readFileSync(path.join(tmp, 'manifest.json'), 'utf8'));
  fs.mkdirSync(dest, { recursive: true });
  for (const layer of manifest[0].Layers) execFileSync('tar', ['-xf', path.join(tmp, layer), '-C', dest]);
  fs.rmSync(tmp, { recursive: true, force: true });
}

const envOf = (e) => dockerEnv(e.sock, cliDir);
const dockerRun = (e) => timed(DOCKER, ['run', '--rm', '--network', 'none', IMAGE, 'true'], { env: envOf(e) });
// Detached: the CLI returns after create + start, without attach and wait.
const dockerRunDetached = (e) => timed(DOCKER, ['run', '-d', '--rm', '--network', 'none', IMAGE, 'true'], { env: envOf(e) });
const runcRun = (id, bundle = 'bundle') => timed('runc', ['--root', rawRoot, 'run', '--bundle', path.join(work, bundle), id]);
let berthSpec = null;
/** raw runc with the spec berth built (own cgroup path per run), bundle "bundle-berth". */
function runcRunBerthSpec(id) {
  const s = JSON.parse(JSON.stringify(berthSpec.spec));
  if (s.linux?.cgroupsPath) s.linux.cgroupsPath = s.linux.cgroupsPath.split(berthSpec.id).join(id);
  fs.writeFileSync(path.join(work, 'bundle-berth', 'config.json'), JSON.stringify(s));
  return runcRun(id, 'bundle-berth');
}

/** The same container over the API without the CLI: create, wait(next-exit), start, wait, delete. */
async function apiRun(e) {
  const t = now();
  const { Id } = await e.api.call('POST', '/containers/create', { Image: IMAGE, Cmd: ['true'], HostConfig: { NetworkMode: 'none' } });
  const waited = e.api.call('POST', `/containers/${Id}/wait?condition=next-exit`);
  await e.api.call('POST', `/containers/${Id}/start`);
  const w = await waited;
  if (w.StatusCode !== 0) throw new Error(`${e.name}: true exited ${w.StatusCode}`);
  await e.api.call('DELETE', `/containers/${Id}`);
  return ms(t, now());
}

async function createContainers(e, n, cmd, prefix) {
  return pool(n, P.inFlight, async (i) => {
    const r = await e.api.call('POST', `/containers/create?name=${prefix}-${i}`, { Image: IMAGE, Cmd: cmd, HostConfig: { NetworkMode: 'none' } });
    return r.Id;
  });
}

async function removeContainers(e, ids) {
  const t = now();
  await pool(ids.length, P.inFlight, (i) => e.api.call('DELETE', `/containers/${ids[i]}?force=1`));
  return ms(t, now());
}

async function settle(e, pollMs = 200) {
  // --rm removals after detached runs finish in the background: give them a few seconds.
  for (let i = 0; ; i++) {
    const left = await e.api.call('GET', '/containers/json?all=1');
    if (!left.length) return;
    if (i >= 10_000 / pollMs) throw new Error(`${e.name}: ${left.length} containers left over after a phase`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/**
 * Between two measurements of phase 1: the engine just measured has removed its containers
 * (a detached --rm run ends in the background) and 100 ms have passed, so that one engine's
 * leftover work (removals, shim exits, containerd's events) does not land in the next
 * measurement, which may be the other engine's.
 */
async function quiesce(e) {
  if (e) await settle(e, 20);
  await new Promise((r) => setTimeout(r, 100));
}

function memoryOf(e) {
  return sumMemory(e.memoryGroups());
}

async function sampleMemory(e, count = 3) {
  const xs = [];
  for (let i = 0; i < count; i++) {
    xs.push(memoryOf(e));
    await new Promise((r) => setTimeout(r, 700));
  }
  xs.sort((a, b) => a.rss - b.rss);
  return xs[Math.floor(xs.length / 2)];
}

let phase = 'setup';
const order = (i, xs) => xs.map((_, k) => xs[(k + i) % xs.length]);

// ------------------------------------------------------------------ the run
const R = {
  machine: {
    host: os.hostname(),
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    memGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    kernel: os.release(),
    node: process.version,
    runc: '',
    conmon: '',
    dockerCli: '',
  },
  params: P,
  date: new Date().toISOString(),
  command: (process.env.BENCH_COMMAND ?? `node bench/bench.mjs ${argv.join(' ')}`).trim(),
};

async function main() {
  R.machine.runc = execFileSync('runc', ['--version'], { encoding: 'utf8' }).split('\n')[0];
  R.machine.conmon = execFileSync('conmon', ['--version'], { encoding: 'utf8' }).split('\n')[0];
  R.machine.dockerCli = execFileSync(DOCKER, ['--version'], { encoding: 'utf8' }).trim();
  log(`work dir ${work}, results to ${outDir}; load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);

  // Image: the project's reproducible busybox image, loaded into both engines.
  const imageDir = path.join(work, 'image');
  execFileSync('bash', [path.join(repo, 'scripts/build-test-image.sh'), imageDir], { stdio: 'ignore' });
  const tarball = path.join(imageDir, 'busybox.tar');
  const rootfs = path.join(work, 'rootfs');
  extractRootfs(tarball, rootfs);

  // Raw runc bundle: `runc spec` defaults, read-only rootfs of the same image, /bin/true.
  const bundle = path.join(work, 'bundle');
  fs.mkdirSync(bundle);
  execFileSync('runc', ['spec', '--bundle', bundle]);
  const spec = JSON.parse(fs.readFileSync(path.join(bundle, 'config.json'), 'utf8'));
  spec.process.terminal = false;
  spec.process.args = ['/bin/true'];
  spec.root = { path: rootfs, readonly: true };
  fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(spec));

  await ref.start(log);
  await berth.start(log);
  R.engines = { dockerd: { version: ref.version, storage: ref.storage }, berth: { version: berth.version } };

  await timed(DOCKER, ['load', '-i', tarball], { env: envOf(ref) });
  // The same rootfs also under --berth-rootfs-dir: berthd serves it as the image when it has
  // no image store (before the image store was wired into the daemon).
  for (const name of [IMAGE, `${IMAGE}:latest`]) execFileSync('cp', ['-a', rootfs, path.join(berth.rootfsDir, name.replace(/[/:@]/g, '_'))]);
  await inproc.start();
  try {
    await timed(DOCKER, ['load', '-i', tarball], { env: envOf(berth) });
    await timed(DOCKER, ['load', '-i', tarball], { env: dockerEnv(inproc.sock, cliDir) });
    R.engines.berth.image = '`docker load` of the same tarball';
  } catch (err) {
    const why = err.message.split('\n')[0].replace(/^.*→ \d+: /, '');
    log(`berth: docker load failed (${why}); using --berth-rootfs-dir with the same image's rootfs`);
    R.engines.berth.image = `--berth-rootfs-dir, the same image's rootfs (docker load answered: ${why})`;
  }
  // The floor: raw `runc run` of the bundle berth builds for this container.
  berthSpec = await inproc.templateSpec();
  const rootfs2 = path.join(work, 'rootfs-berth-spec');
  execFileSync('cp', ['-a', rootfs, rootfs2]);
  berthSpec.spec.root = { ...berthSpec.spec.root, path: rootfs2 };
  fs.mkdirSync(path.join(work, 'bundle-berth'));
  for (let i = 0; i < P.warmup; i++) {
    await dockerRun(ref);
    await dockerRun(berth);
    await runcRun(`warm-${i}`);
    await runcRunBerthSpec(`warmb-${i}`);
  }
  await new Promise((r) => setTimeout(r, 1500));
  R.memoryIdle = { dockerd: await sampleMemory(ref), berth: await sampleMemory(berth) };
  log(`idle memory: dockerd+containerd ${fmtMiB(R.memoryIdle.dockerd.rss)}, berthd ${fmtMiB(R.memoryIdle.berth.rss)}`);

  phase = '1 run latency';
  // 1. docker run --rm --network none IMAGE true, and raw runc run, interleaved.
  loadAvg.push(os.loadavg());
  const run = { berth: [], dockerd: [], 'raw runc': [], 'raw runc, runc spec defaults': [], 'berth API': [], 'dockerd API': [], 'CLI floor berth': [], 'CLI floor dockerd': [], 'run -d berth': [], 'run -d dockerd': [] };
  for (let i = 0; i < P.runs; i++) {
    for (const which of order(i, Object.keys(run))) {
      if (which.endsWith(' API')) run[which].push(await apiRun(which.startsWith('berth') ? berth : ref));
      else if (which.startsWith('run -d')) run[which].push((await dockerRunDetached(which.endsWith('berth') ? berth : ref)).ms);
      else if (which.startsWith('CLI floor')) run[which].push((await timed(DOCKER, ['ps', '-q'], { env: envOf(which.endsWith('berth') ? berth : ref) })).ms);
      else if (which === 'raw runc') run[which].push((await runcRunBerthSpec(`rawb-${i}`)).ms);
      else if (which === 'raw runc, runc spec defaults') run[which].push((await runcRun(`raw-${i}`)).ms);
      else run[which].push((await dockerRun(which === 'berth' ? berth : ref)).ms);
      await quiesce(which.startsWith('raw runc') ? null : which.includes('berth') ? berth : ref);
    }
  }
  R.run = Object.fromEntries(Object.entries(run).map(([k, v]) => [k, { ...summary(v), values: v }]));
  log(`run latency median: berth ${fmtMs(R.run.berth.median)}, dockerd ${fmtMs(R.run.dockerd.median)}, runc ${fmtMs(R.run['raw runc'].median)}`);
  await settle(berth);
  await settle(ref);

  phase = '2 batch start';
  // 2. create+start of 50 containers, 8 in flight, then removal (wall time), rounds interleaved.
  loadAvg.push(os.loadavg());
  const batch = { berth: { start: [], remove: [] }, dockerd: { start: [], remove: [] } };
  for (let round = 0; round < P.batchRounds; round++) {
    for (const e of order(round, [berth, ref])) {
      const t = now();
      const ids = await pool(P.batch, P.inFlight, async (i) => {
        const { Id } = await e.api.call('POST', `/containers/create?name=b${round}-${i}`, { Image: IMAGE, Cmd: ['sleep', '3600'], HostConfig: { NetworkMode: 'none' } });
        await e.api.call('POST', `/containers/${Id}/start`);
        return Id;
      });
      batch[e.name].start.push(ms(t, now()));
      const running = (await e.api.call('GET', '/containers/json')).length;
      if (running !== P.batch) throw new Error(`${e.name}: ${running} running after starting ${P.batch}`);
      batch[e.name].remove.push(await removeContainers(e, ids));
      await settle(e);
    }
  }
  R.batch = batch;
  log(`${P.batch} create+start median wall: berth ${fmtMs(median(batch.berth.start))}, dockerd ${fmtMs(median(batch.dockerd.start))}`);

  phase = '5 memory';
  // 5. memory with N running `sleep` containers.
  loadAvg.push(os.loadavg());
  R.memoryRunning = {};
  for (const e of [berth, ref]) {
    const ids = await pool(P.memContainers, P.inFlight, async (i) => {
      const { Id } = await e.api.call('POST', `/containers/create?name=m-${i}`, { Image: IMAGE, Cmd: ['sleep', '3600'], HostConfig: { NetworkMode: 'none' } });
      await e.api.call('POST', `/containers/${Id}/start`);
      return Id;
    });
    await new Promise((r) => setTimeout(r, 2000));
    const m = await sampleMemory(e);
    R.memoryRunning[e.name] = m;
    const monitors = Object.entries(m.groups).filter(([k]) => k !== 'berthd' && k !== 'dockerd' && k !== 'containerd');
    const nMon = monitors.reduce((s, [, g]) => s + g.count, 0);
    if (nMon < P.memContainers) throw new Error(`${e.name}: found ${nMon} monitor/shim processes for ${P.memContainers} running containers`);
    log(`memory with ${P.memContainers} running: ${e.name} RSS ${fmtMiB(m.rss)} (PSS ${fmtMiB(m.pss)})`);
    await removeContainers(e, ids);
    await settle(e);
  }

  phase = '3 ps -a';
  // 3. docker ps -a with 1000 containers present; 4. inspect under 200 concurrent requests.
  loadAvg.push(os.loadavg());
  const many = {};
  R.createMany = {};
  for (const e of [berth, ref]) {
    const t = now();
    many[e.name] = await createContainers(e, P.psContainers, ['true'], 'p');
    R.createMany[e.name] = ms(t, now());
    log(`${e.name}: created ${P.psContainers} containers in ${fmtMs(R.createMany[e.name])}`);
  }
  const ps = { berth: [], dockerd: [] };
  const psApi = { berth: [], dockerd: [] };
  for (let i = 0; i < P.psRuns; i++) {
    for (const e of order(i, [berth, ref])) {
      // the API call alone (what the CLI sends for ps -a), to separate daemon from CLI
      const ta = now();
      const r0 = await e.api.raw('GET', '/containers/json?all=1');
      psApi[e.name].push(ms(ta, now()));
      if (r0.status !== 200 || JSON.parse(r0.body).length !== P.psContainers) throw new Error(`${e.name}: GET /containers/json?all=1 → ${r0.status}`);
      const r = await timed(DOCKER, ['ps', '-a', '--no-trunc'], { env: envOf(e), capture: true });
      const lines = r.stdout.trim().split('\n').length - 1;
      if (lines !== P.psContainers) throw new Error(`${e.name}: docker ps -a listed ${lines} containers, expected ${P.psContainers}`);
      ps[e.name].push(r.ms);
    }
  }
  R.ps = Object.fromEntries(Object.entries(ps).map(([k, v]) => [k, { ...summary(v), values: v }]));
  R.psApi = Object.fromEntries(Object.entries(psApi).map(([k, v]) => [k, { ...summary(v), values: v }]));
  log(`docker ps -a median: berth ${fmtMs(R.ps.berth.median)}, dockerd ${fmtMs(R.ps.dockerd.median)}`);

  loadAvg.push(os.loadavg());
  phase = '4 inspect load';
  const insp = { berth: [], dockerd: [] };
  for (let round = 0; round < P.inspectRounds; round++) {
    for (const e of order(round, [berth, ref])) {
      const paths = many[e.name].map((id) => `/v1.41/containers/${id}/json`);
      const r = await load(e.sock, paths, { connections: P.inspectConnections, durationMs: P.inspectMs });
      if (r.errors) throw new Error(`${e.name}: ${r.errors} failed inspect requests (first: ${r.firstError})`);
      insp[e.name].push(r);
    }
  }
  R.inspect = Object.fromEntries(
    Object.entries(insp).map(([k, rs]) => {
      const lat = rs.flatMap((r) => r.latencies);
      const reqs = rs.reduce((s, r) => s + r.requests, 0);
      const el = rs.reduce((s, r) => s + r.elapsedMs, 0);
      return [k, { requests: reqs, rps: (reqs / el) * 1000, p50: quantile(lat, 0.5), p99: quantile(lat, 0.99), rounds: rs.map((r) => ({ rps: r.rps, p99: quantile(r.latencies, 0.99) })), sample: lat.filter((_, i) => i % Math.max(1, Math.floor(lat.length / 4000)) === 0) }];
    }),
  );
  log(`inspect x${P.inspectConnections}: berth ${R.inspect.berth.rps.toFixed(0)} req/s p99 ${fmtMs(R.inspect.berth.p99)}, dockerd ${R.inspect.dockerd.rps.toFixed(0)} req/s p99 ${fmtMs(R.inspect.dockerd.p99)}`);
  R.removeMany = {};
  for (const e of [berth, ref]) {
    R.removeMany[e.name] = await removeContainers(e, many[e.name]);
    await settle(e);
  }

  phase = '6 hook breakdown';
  // 6. per-hook breakdown of berth's start (in-process daemon, same built-ins).
  loadAvg.push(os.loadavg());
  R.hooks = await inproc.hookBreakdown(P.hookRuns);
  log(`hook breakdown: ${R.hooks.runs} starts`);
  // 7. What one child process costs berthd's event loop: the synchronous part of
  // child_process.spawn (fork + wait for exec) in this process, which hosts a berthd too.
  phase = '7 spawn cost';
  const sp = [];
  for (let i = 0; i < 40; i++) {
    const t = now();
    const child = spawn('/bin/true', [], { stdio: 'ignore' });
    sp.push(ms(t, now()));
    await new Promise((r) => child.on('close', r));
  }
  R.spawnSync = { ...summary(sp.slice(5)), rssMiB: +(process.memoryUsage().rss / 2 ** 20).toFixed(0) };
  loadAvg.push(os.loadavg());
}

function ratio(a, b) {
  return a / b;
}

function report() {
  const T = [];
  const row = (name, b, d, r, target, fmt) => {
    const rs = Number.isFinite(r) ? r.toFixed(2) : 'n/a';
    const verdict = target === null ? '' : Number.isFinite(r) ? (r <= target ? `≤ ${target}: **met**` : `≤ ${target}: **missed** (${(r / target).toFixed(1)}× over)`) : '';
    T.push(`| ${name} | ${fmt(b)} | ${fmt(d)} | ${rs} | ${verdict} |`);
  };
  T.push('| measurement | berth | dockerd | berth/dockerd | target |', '| --- | ---: | ---: | ---: | --- |');
  const ps = R.ps;
  row('`docker run --rm --network none` true: median', R.run.berth.median, R.run.dockerd.median, ratio(R.run.berth.median, R.run.dockerd.median), 0.35, fmtMs);
  row('`docker run --rm --network none` true: p90', R.run.berth.p90, R.run.dockerd.p90, ratio(R.run.berth.p90, R.run.dockerd.p90), null, fmtMs);
  const b50 = median(R.batch.berth.start);
  const d50 = median(R.batch.dockerd.start);
  row(`create+start ${P.batch} containers, ${P.inFlight} in flight: wall`, b50, d50, ratio(b50, d50), 0.5, fmtMs);
  row(`remove those ${P.batch} (force), ${P.inFlight} in flight: wall`, median(R.batch.berth.remove), median(R.batch.dockerd.remove), ratio(median(R.batch.berth.remove), median(R.batch.dockerd.remove)), null, fmtMs);
  row(`\`docker ps -a\` with ${P.psContainers} containers: median`, ps.berth.median, ps.dockerd.median, ratio(ps.berth.median, ps.dockerd.median), 0.5, fmtMs);
  row(`\`docker ps -a\` with ${P.psContainers} containers: p90`, ps.berth.p90, ps.dockerd.p90, ratio(ps.berth.p90, ps.dockerd.p90), null, fmtMs);
  row(`  the API call alone: GET /containers/json?all=1 (median)`, R.psApi.berth.median, R.psApi.dockerd.median, ratio(R.psApi.berth.median, R.psApi.dockerd.median), null, fmtMs);
  row(`GET /containers/{id}/json ×${P.inspectConnections} concurrent: req/s (higher is better)`, R.inspect.berth.rps, R.inspect.dockerd.rps, ratio(R.inspect.berth.rps, R.inspect.dockerd.rps), null, (v) => v.toFixed(0));
  row(`GET /containers/{id}/json ×${P.inspectConnections} concurrent: p99`, R.inspect.berth.p99, R.inspect.dockerd.p99, ratio(R.inspect.berth.p99, R.inspect.dockerd.p99), null, fmtMs);
  row('memory idle (RSS): berthd vs dockerd+containerd', R.memoryIdle.berth.rss, R.memoryIdle.dockerd.rss, ratio(R.memoryIdle.berth.rss, R.memoryIdle.dockerd.rss), null, fmtMiB);
  row(`memory, ${P.memContainers} running (RSS): berthd+conmons vs dockerd+containerd+shims`, R.memoryRunning.berth.rss, R.memoryRunning.dockerd.rss, ratio(R.memoryRunning.berth.rss, R.memoryRunning.dockerd.rss), 0.5, fmtMiB);
  row(`memory, ${P.memContainers} running (PSS, shared pages split)`, R.memoryRunning.berth.pss, R.memoryRunning.dockerd.pss, ratio(R.memoryRunning.berth.pss, R.memoryRunning.dockerd.pss), null, fmtMiB);
  const rr = R.run['raw runc'].median;
  const T2 = [
    '| floor | median | p90 | berth `docker run` / floor | target |',
    '| --- | ---: | ---: | ---: | --- |',
    `| raw \`runc run\` of the bundle berth builds (same config.json, rootfs copy, own cgroup) | ${fmtMs(rr)} | ${fmtMs(R.run['raw runc'].p90)} | ${(R.run.berth.median / rr).toFixed(2)} | ≤ 2: **${R.run.berth.median / rr <= 2 ? 'met' : `missed (${(R.run.berth.median / rr / 2).toFixed(1)}× over)`}** |`,
    `| raw \`runc run\`, \`runc spec\` defaults (same rootfs, /bin/true) | ${fmtMs(R.run['raw runc, runc spec defaults'].median)} | ${fmtMs(R.run['raw runc, runc spec defaults'].p90)} | ${(R.run.berth.median / R.run['raw runc, runc spec defaults'].median).toFixed(2)} | |`,
    `| dockerd \`docker run\` / raw runc, for comparison | | | ${(R.run.dockerd.median / rr).toFixed(2)} | |`,
    `| the same over the API without the CLI (create, wait, start, delete): berth | ${fmtMs(R.run['berth API'].median)} | ${fmtMs(R.run['berth API'].p90)} | ${(R.run['berth API'].median / rr).toFixed(2)} | |`,
    `| docker CLI floor: \`docker ps -q\` with no containers, berth / dockerd | ${fmtMs(R.run['CLI floor berth'].median)} / ${fmtMs(R.run['CLI floor dockerd'].median)} | ${fmtMs(R.run['CLI floor berth'].p90)} / ${fmtMs(R.run['CLI floor dockerd'].p90)} | | |`,
    `| \`docker run -d --rm\` (CLI returns after start: no attach, no wait), berth / dockerd | ${fmtMs(R.run['run -d berth'].median)} / ${fmtMs(R.run['run -d dockerd'].median)} | ${fmtMs(R.run['run -d berth'].p90)} / ${fmtMs(R.run['run -d dockerd'].p90)} | | berth/dockerd ${(R.run['run -d berth'].median / R.run['run -d dockerd'].median).toFixed(2)} |`,
    `| the same over the API without the CLI: dockerd | ${fmtMs(R.run['dockerd API'].median)} | ${fmtMs(R.run['dockerd API'].p90)} | ${(R.run['dockerd API'].median / rr).toFixed(2)} | berth/dockerd ${(R.run['berth API'].median / R.run['dockerd API'].median).toFixed(2)} |`,
  ];
  const memRows = ['| process group | count | RSS | PSS |', '| --- | ---: | ---: | ---: |'];
  for (const [eng, m] of Object.entries(R.memoryRunning)) {
    for (const [g, v] of Object.entries(m.groups)) memRows.push(`| ${eng}: ${g} | ${v.count} | ${fmtMiB(v.rss)} | ${fmtMiB(v.pss)} |`);
  }
  const H = ['| step of a start (in-process berthd, `true`) | median | p90 |', '| --- | ---: | ---: |'];
  for (const s of R.hooks.segments) H.push(`| ${s.step} | ${fmtMs(s.median)} | ${fmtMs(s.p90)} |`);
  for (const s of R.hooks.backendSteps) H.push(`| ${s.step} | ${fmtMs(s.median)} | ${fmtMs(s.p90)} |`);
  H.push('', '| tap (hook / plugin / name) | median | p90 |', '| --- | --- | ---: |');
  for (const t of R.hooks.taps) H.push(`| ${t.hook} / ${t.plugin} / ${t.tap} | ${fmtMs(t.median)} | ${fmtMs(t.p90)} |`);
  H.push('', `Synchronous part of one \`child_process.spawn('/bin/true')\` in a Node process of ${R.spawnSync.rssMiB} MiB RSS (blocks the event loop): median ${fmtMs(R.spawnSync.median)}, p90 ${fmtMs(R.spawnSync.p90)} (n=${R.spawnSync.n}).`);
  const la = loadAvg.map((l) => l[0].toFixed(2)).join(', ');
  const head = [
    `Machine: ${R.machine.cpus} × ${R.machine.cpuModel}, ${R.machine.memGiB} GiB, Linux ${R.machine.kernel}, Node ${R.machine.node}; ${R.machine.runc}; ${R.machine.conmon}; ${R.machine.dockerCli}.`,
    `Engines: berthd ${R.engines.berth.version} (image: ${R.engines.berth.image}${profile ? '; under node --cpu-prof' : ''}); dockerd ${R.engines.dockerd.version} (${R.engines.dockerd.storage}) on its own containerd.`,
    `Date: ${R.date}; command: \`${R.command}\`; duration ${((Date.now() - t00) / 1000).toFixed(0)} s; 1-min load average at phase starts: ${la}.`,
  ];
  return { head, main: T, floor: T2, mem: memRows, hooks: H };
}

let failed = null;
try {
  await main();
} catch (err) {
  failed = err;
  console.error(`bench failed in phase "${phase}": ${err.stack ?? err}`);
}
await cleanup();
if (failed) process.exit(1);
const rep = report();
const profileFile = path.join(outDir, 'berthd.cpuprofile');
let profileMd = '';
if (fs.existsSync(profileFile)) {
  profileMd = profileMarkdown(summarizeProfile(profileFile));
  fs.writeFileSync(path.join(outDir, 'profile.md'), profileMd);
  // gzip -d it, then open in Chrome DevTools (Performance) or speedscope
  fs.writeFileSync(`${profileFile}.gz`, gzipSync(fs.readFileSync(profileFile)));
  fs.rmSync(profileFile);
} else if (profile) log('no berthd CPU profile was written');
const md = [...rep.head, '', ...rep.main, '', ...rep.floor, '', ...rep.mem, '', ...rep.hooks, '', ...(profileMd ? ['berthd CPU profile (whole run):', '', profileMd] : [])].join('\n');
fs.writeFileSync(path.join(outDir, 'table.md'), md);
fs.writeFileSync(path.join(outDir, 'results.json'), JSON.stringify({ ...R, loadAvg, durationS: Math.round((Date.now() - t00) / 1000), profiled: profile }, null, 1));
fs.writeFileSync(
  path.join(outDir, 'latency.svg'),
  cdfChart(
    [
      { title: '"docker run --rm --network none IMAGE true" (docker CLI wall time), the same over the API, and raw "runc run"', series: Object.entries(R.run).filter(([name]) => !name.startsWith('CLI floor') && !name.startsWith('run -d')).map(([name, s]) => ({ name, values: s.values })) },
      { title: `"docker ps -a" with ${P.psContainers} containers (docker CLI wall time)`, series: Object.entries(R.ps).map(([name, s]) => ({ name, values: s.values })) },
      { title: `GET /containers/{id}/json, ${P.inspectConnections} concurrent connections (sampled)`, series: Object.entries(R.inspect).map(([name, s]) => ({ name, values: s.sample })) },
    ],
    { title: `berth vs dockerd, ${R.date.slice(0, 16)}Z, ${R.machine.cpus} CPUs` },
  ),
);
console.log('\n' + md);
console.log(`results: ${outDir}/{table.md,results.json,latency.svg}`);
process.exit(0);
