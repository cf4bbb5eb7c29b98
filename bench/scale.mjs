#!/usr/bin/env node
// Issue-18 benchmark: how each operation's cost grows with the number of containers present,
// berthd and Debian's dockerd (own containerd) side by side in one run. For each size N (default
// 0,100,1000), both engines are topped up to N containers (created over the API, 8 in flight;
// `--running` of them started, a `sleep`), then k interleaved repetitions measure: create, start,
// inspect, stop, rm of one probe container (API), `docker ps -a` and `docker ps -a --filter
// label=…` (the CLI call and the API call alone), and the events stream's lag (event arrival
// minus the arrival of the answer to the action that caused it). The daemon's RSS and open fds
// are read at each size, again after --settle seconds without requests (default 15: what each
// daemon keeps once the work is over), and each top-up is timed (bulk create throughput, 8 in flight). Before
// the sizes, the issue's two bulk targets, `--bulk-reps` times interleaved: 300 creates 8 in
// flight (with the daemon's CPU for them: berthd's process and its JS thread, dockerd's and its
// containerd's), and 30 create+start all in flight at once (each batch removed after). Writes JSON +
// one SVG per operation to bench/results/<stamp>-scale/.
// Needs root, dockerd, containerd, runc, conmon; stops everything it started, also on failure.
//
//   node bench/scale.mjs [--sizes 0,100,1000[,5000]] [--reps K] [--running R] [--bulk-reps B] [--settle S] [--bulk-only] [--out DIR]
// (--bulk-only: the two bulk targets alone, no sizes; scale.json only)
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DOCKER, dockerEnv, timed } from './lib/cli.mjs';
import { Berth, Reference } from './lib/engines.mjs';
import { ApiClient, pool } from './lib/http.mjs';
import { fdCount, memoryOf } from './lib/procs.mjs';
import { median, ms, now, quantile } from './lib/stats.mjs';
import { cleanupOnce } from './lib/setup.mjs';
import { lineChart } from './lib/svg.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..');
const argv = process.argv.slice(2);
const opt = (f, d) => (argv.includes(f) ? argv[argv.indexOf(f) + 1] : d);
const BULK_ONLY = argv.includes('--bulk-only');
const SIZES = BULK_ONLY ? [] : opt('--sizes', '0,100,1000').split(',').map(Number).sort((a, b) => a - b);
const REPS = Number(opt('--reps', 7));
const RUNNING = Number(opt('--running', 10));
const IN_FLIGHT = 8;
const BULK_REPS = Number(opt('--bulk-reps', 3));
// seconds without requests before the daemons' RSS is read again at each size (0: no second reading)
const SETTLE_S = Number(opt('--settle', 15));
const BULK_CREATES = 300;
const PARALLEL_STARTS = 30;
const IMAGE = 'berth-test/busybox';
// PID 1 that ends on SIGTERM, so that stop measures a stop and not the 10 s kill timeout
const CMD = ['sh', '-c', 'trap "exit 0" TERM; sleep 3600 & wait'];
const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z').replace(/^(\d{4})(\d{2})(\d{2})/, '$1-$2-$3');
const OUT = opt('--out', path.join(here, 'results', `${stamp}-scale`));

if (process.getuid() !== 0) {
  console.error('bench scale: needs root');
  process.exit(2);
}
const t00 = Date.now();
const log = (m) => console.log(`[scale ${((Date.now() - t00) / 1000).toFixed(0).padStart(4)}s] ${m}`);
const work = fs.mkdtempSync('/tmp/bb-'); // bench/cleanup.sh accepts /tmp/bb-* if we are killed outright
fs.writeFileSync(path.join(work, 'bench.pid'), `${process.pid}\n`);
const cliDir = path.join(work, 'cli');
fs.mkdirSync(cliDir);

const ref = new Reference(work);
const berth = new Berth(work, repo, { daemonJson: { bridge: 'none' } });
const engines = [berth, ref];
const envOf = (e) => dockerEnv(e.sock, cliDir);
const OPS = ['create', 'start', 'inspect', 'stop', 'rm', 'ps -a (CLI)', 'ps -a (API)', 'ps --filter label (CLI)', 'ps --filter label (API)', 'event lag'];
const R = { date: new Date().toISOString(), sizes: SIZES, reps: REPS, running: RUNNING, inFlight: IN_FLIGHT, machine: `${os.cpus().length} CPUs, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, Linux ${os.release()}`, loads: [], engines: {}, bulk: {}, populate: {}, bySize: {} };

/**
 * Follows GET /events (container events) and keeps each event's arrival time by "id action".
 * Both engines write one JSON object per line.
 */
function followEvents(e) {
  const arrivals = new Map();
  let buf = '';
  const req = http.request({ socketPath: e.sock, method: 'GET', path: `/v1.41/events?filters=${encodeURIComponent(JSON.stringify({ type: ['container'] }))}` }, (res) => {
    res.setEncoding('utf8');
    res.on('data', (chunk) => {
      const t = now();
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        const ev = JSON.parse(line);
        const key = `${ev.Actor?.ID ?? ev.id} ${ev.Action ?? ev.status}`;
        if (!arrivals.has(key)) arrivals.set(key, t);
      }
    });
    res.on('error', () => {});
  });
  req.on('error', () => {});
  req.end();
  return { arrivals, close: () => req.destroy() };
}

/** Waits (up to 10 s) for an event; its lag in ms after `answeredAt` (negative: it came first). */
async function eventLag(events, id, action, answeredAt) {
  for (let i = 0; i < 1000 && !events.arrivals.has(`${id} ${action}`); i++) await new Promise((r) => setTimeout(r, 10));
  const t = events.arrivals.get(`${id} ${action}`);
  if (t === undefined) throw new Error(`no "${action}" event for ${id.slice(0, 12)} within 10 s`);
  return Number(t - answeredAt) / 1e6;
}

async function timedCall(e, method, p, body) {
  const t = now();
  const r = await e.api.call(method, p, body);
  const end = now();
  return { ms: ms(t, end), end, r };
}

/** Tops engine e up to n population containers (RUNNING of them started). */
async function populate(e, have, n) {
  await pool(n - have, IN_FLIGHT, async (j) => {
    const i = have + j;
    const labels = { 'bench.pop': '1', ...(i % 100 === 0 ? { 'bench.rare': '1' } : {}) };
    const { Id } = await e.api.call('POST', `/containers/create?name=pop-${i}`, { Image: IMAGE, Cmd: CMD, Labels: labels, HostConfig: { NetworkMode: 'none' } });
    if (i < RUNNING) await e.api.call('POST', `/containers/${Id}/start`);
  });
}

/** CPU time (user + system, ms) of process `pid` (all its threads), or of its thread `tid`; NaN when gone. */
function cpuMs(pid, tid) {
  try {
    const f = fs.readFileSync(tid ? `/proc/${pid}/task/${tid}/stat` : `/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime, stime in clock ticks (USER_HZ 100)
  } catch {
    return NaN;
  }
}

/**
 * The daemon's CPU so far: berthd's process and its main (JavaScript) thread — what serialises
 * concurrent creates — or dockerd's process and its containerd's.
 */
function daemonCpu(e) {
  const g = e.memoryGroups();
  if (e === berth) return { process: cpuMs(g.berthd[0]), mainThread: cpuMs(g.berthd[0], g.berthd[0]) };
  return { process: cpuMs(g.dockerd[0]), containerd: cpuMs(g.containerd[0]) };
}

/** Force-removes the containers `ids` of engine e, 8 in flight. */
async function removeAll(api, ids) {
  await pool(ids.length, IN_FLIGHT, (i) => api.call('DELETE', `/containers/${ids[i]}?force=1`));
}

/**
 * The bulk targets on engine e (rep r): BULK_CREATES creates 8 in flight, then
 * PARALLEL_STARTS create+start all at once; wall times in ms, each batch removed after.
 */
async function bulk(e, r) {
  const body = { Image: IMAGE, Cmd: CMD, HostConfig: { NetworkMode: 'none' } };
  const api = new ApiClient(e.sock, '1.41', PARALLEL_STARTS); // e.api allows 16 connections
  try {
    const cpu0 = daemonCpu(e);
    let t = now();
    const created = await pool(BULK_CREATES, IN_FLIGHT, async (i) => (await api.call('POST', `/containers/create?name=bulk-${r}-${i}`, body)).Id);
    const creates = ms(t, now());
    const cpu1 = daemonCpu(e);
    const createsCpu = Object.fromEntries(Object.keys(cpu0).map((k) => [k, cpu1[k] - cpu0[k]]));
    await removeAll(api, created);
    t = now();
    const started = await pool(PARALLEL_STARTS, PARALLEL_STARTS, async (i) => {
      const { Id } = await api.call('POST', `/containers/create?name=par-${r}-${i}`, body);
      await api.call('POST', `/containers/${Id}/start`);
      return Id;
    });
    const createStart = ms(t, now());
    await removeAll(api, started);
    return { creates, createStart, createsCpu };
  } finally {
    api.close();
  }
}

/** One repetition of the per-operation measurements on engine e; pushes into acc[op]. */
async function probe(e, events, acc, n, rep) {
  const push = (op, v) => (acc[op] ??= []).push(v);
  const c = await timedCall(e, 'POST', `/containers/create?name=probe-${n}-${rep}`, { Image: IMAGE, Cmd: CMD, Labels: { 'bench.probe': '1' }, HostConfig: { NetworkMode: 'none' } });
  const id = c.r.Id;
  push('create', c.ms);
  push('event lag', await eventLag(events, id, 'create', c.end));
  const s = await timedCall(e, 'POST', `/containers/${id}/start`);
  push('start', s.ms);
  push('event lag', await eventLag(events, id, 'start', s.end));
  push('inspect', (await timedCall(e, 'GET', `/containers/${id}/json`)).ms);
  const total = n + 1;
  const all = await timedCall(e, 'GET', '/containers/json?all=1');
  if (all.r.length !== total) throw new Error(`${e.name}: GET /containers/json?all=1 listed ${all.r.length}, expected ${total}`);
  push('ps -a (API)', all.ms);
  const cli = await timed(DOCKER, ['ps', '-a', '--no-trunc'], { env: envOf(e), capture: true });
  if (cli.stdout.trim().split('\n').length - 1 !== total) throw new Error(`${e.name}: docker ps -a listed a wrong count`);
  push('ps -a (CLI)', cli.ms);
  const rare = Math.ceil(n / 100);
  const f = await timedCall(e, 'GET', `/containers/json?all=1&filters=${encodeURIComponent(JSON.stringify({ label: ['bench.rare=1'] }))}`);
  if (f.r.length !== rare) throw new Error(`${e.name}: label filter listed ${f.r.length}, expected ${rare}`);
  push('ps --filter label (API)', f.ms);
  push('ps --filter label (CLI)', (await timed(DOCKER, ['ps', '-a', '--no-trunc', '--filter', 'label=bench.rare=1'], { env: envOf(e), capture: true })).ms);
  const st = await timedCall(e, 'POST', `/containers/${id}/stop?t=10`);
  push('stop', st.ms);
  push('event lag', await eventLag(events, id, 'die', st.end));
  const rm = await timedCall(e, 'DELETE', `/containers/${id}`);
  push('rm', rm.ms);
  push('event lag', await eventLag(events, id, 'destroy', rm.end));
}

function daemonStats(e) {
  const pid = e.mainPid();
  const m = memoryOf(pid);
  const out = { rss: m?.rss ?? NaN, anon: m?.anon ?? NaN, file: m?.file ?? NaN, fds: fdCount(pid) };
  if (e === ref) {
    const c = memoryOf(ref.containerd.pid);
    out.containerdRss = c?.rss ?? NaN;
    out.containerdAnon = c?.anon ?? NaN;
    out.containerdFds = fdCount(ref.containerd.pid);
  }
  return out;
}

function writeResults() {
  fs.mkdirSync(OUT, { recursive: true });
  fs.writeFileSync(path.join(OUT, 'scale.json'), `${JSON.stringify(R, null, 1)}\n`);
  const xs = SIZES.filter((n) => R.bySize[n]);
  if (xs.length === 0) return [];
  const series = (name, get) => ({ name, points: xs.map((n) => [n, get(R.bySize[n])]) });
  const files = [];
  const chart = (file, title, panels) => {
    fs.writeFileSync(path.join(OUT, file), lineChart(panels, { title }));
    files.push(file);
  };
  for (const op of OPS) {
    const slug = op.replace(/[^a-z]+/gi, '-').replace(/-+$/, '').toLowerCase();
    chart(`${slug}.svg`, `${op} vs containers present (${stamp})`, [
      { title: `${op}: median (solid) and p90 (dashed), ms`, xLabel: 'containers present', series: ['berth', 'dockerd'].flatMap((eng) => [series(eng, (s) => s[eng].ops[op].median), series(`${eng} p90`, (s) => s[eng].ops[op].p90)]) },
    ]);
  }
  chart('daemon.svg', `daemon RSS and open fds vs containers present (${stamp})`, [
    { title: 'RSS, MiB (dashed: after the settle time at rest)', xLabel: 'containers present', series: [series('berth', (s) => s.berth.daemon.rss / 2 ** 20), series('dockerd', (s) => s.dockerd.daemon.rss / 2 ** 20), series('dockerd + containerd', (s) => (s.dockerd.daemon.rss + s.dockerd.daemon.containerdRss) / 2 ** 20), ...(SETTLE_S > 0 ? [series('berth at rest', (s) => (s.berth.daemonAtRest?.rss ?? NaN) / 2 ** 20), series('dockerd at rest', (s) => (s.dockerd.daemonAtRest?.rss ?? NaN) / 2 ** 20)] : [])] },
    { title: 'open file descriptors', xLabel: 'containers present', series: [series('berth', (s) => s.berth.daemon.fds), series('dockerd', (s) => s.dockerd.daemon.fds), series('dockerd + containerd', (s) => s.dockerd.daemon.fds + s.dockerd.daemon.containerdFds)] },
  ]);
  return files;
}

const cleanup = cleanupOnce(engines, { work, log });

const followers = [];
try {
  log(`work dir ${work}; sizes ${SIZES.join(',')}; load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  const imageDir = path.join(work, 'image');
  execFileSync('bash', [path.join(repo, 'scripts/build-test-image.sh'), imageDir], { stdio: 'ignore' });
  for (const e of engines) {
    await e.start(log);
    R.engines[e.name] = e.version;
    await timed(DOCKER, ['load', '-i', path.join(imageDir, 'busybox.tar')], { env: envOf(e) });
  }
  const events = Object.fromEntries(engines.map((e) => [e.name, followEvents(e)]));
  followers.push(...Object.values(events));
  for (let r = 0; r < BULK_REPS; r++) {
    for (const e of r % 2 ? [ref, berth] : [berth, ref]) {
      const b = await bulk(e, r);
      const acc = (R.bulk[e.name] ??= { creates: [], createStart: [], createsCpu: [] });
      acc.creates.push(b.creates);
      acc.createStart.push(b.createStart);
      acc.createsCpu.push(b.createsCpu);
      const cpu = Object.entries(b.createsCpu).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ');
      log(`${e.name} bulk ${r}: ${BULK_CREATES} creates (${IN_FLIGHT} in flight) ${b.creates.toFixed(0)} ms (CPU ms: ${cpu}), ${PARALLEL_STARTS} parallel create+start ${b.createStart.toFixed(0)} ms (load ${os.loadavg()[0].toFixed(1)})`);
    }
  }
  for (const k of ['creates', 'createStart']) {
    const b = median(R.bulk.berth[k]);
    const d = median(R.bulk.dockerd[k]);
    R.bulk[`${k}Ratio`] = b / d;
    log(`bulk ${k}: medians berth ${b.toFixed(0)} ms, dockerd ${d.toFixed(0)} ms (${(b / d).toFixed(2)})`);
  }
  if (BULK_REPS > 0) {
    const cpu = (name, k) => median(R.bulk[name].createsCpu.map((c) => c[k])).toFixed(0);
    log(`bulk creates, daemon CPU per ${BULK_CREATES} (medians): berthd ${cpu('berth', 'process')} ms (its JS thread ${cpu('berth', 'mainThread')}), dockerd ${cpu('dockerd', 'process')} ms (+ containerd ${cpu('dockerd', 'containerd')})`);
  }
  const have = { berth: 0, dockerd: 0 };
  for (const n of SIZES) {
    for (const e of engines) {
      const t = now();
      await populate(e, have[e.name], n);
      const took = ms(t, now());
      (R.populate[n] ??= {})[e.name] = { from: have[e.name], ms: took };
      log(`${e.name}: ${have[e.name]} → ${n} containers in ${(took / 1000).toFixed(1)} s (load ${os.loadavg()[0].toFixed(1)})`);
      have[e.name] = n;
    }
    const acc = { berth: {}, dockerd: {} };
    for (const e of engines) await probe(e, events[e.name], {}, n, 'warm'); // warm-up, not counted
    for (let rep = 0; rep < REPS; rep++) {
      for (const e of rep % 2 ? [ref, berth] : [berth, ref]) await probe(e, events[e.name], acc[e.name], n, rep);
    }
    const load = os.loadavg()[0];
    R.loads.push({ size: n, load1: load });
    R.bySize[n] = Object.fromEntries(
      engines.map((e) => [e.name, { daemon: daemonStats(e), ops: Object.fromEntries(OPS.map((op) => [op, { median: median(acc[e.name][op]), p90: quantile(acc[e.name][op], 0.9), values: acc[e.name][op] }])) }]),
    );
    if (SETTLE_S > 0) {
      // the same daemons after SETTLE_S s without requests: what each keeps once a burst is over
      await new Promise((r) => setTimeout(r, SETTLE_S * 1000));
      for (const e of engines) R.bySize[n][e.name].daemonAtRest = daemonStats(e);
      const mib = (e) => (R.bySize[n][e].daemonAtRest.rss / 2 ** 20).toFixed(1);
      log(`N=${n}: RSS after the probes berth ${(R.bySize[n].berth.daemon.rss / 2 ** 20).toFixed(1)} / dockerd ${(R.bySize[n].dockerd.daemon.rss / 2 ** 20).toFixed(1)} MiB, after ${SETTLE_S} s at rest ${mib('berth')} / ${mib('dockerd')} MiB`);
    }
    const b = R.bySize[n].berth.ops;
    const d = R.bySize[n].dockerd.ops;
    log(`N=${n} (load ${load.toFixed(1)}): ${OPS.map((op) => `${op} ${b[op].median.toFixed(1)}/${d[op].median.toFixed(1)}`).join(', ')} ms (berth/dockerd medians)`);
    writeResults(); // partial results survive a later failure
  }
  const files = writeResults();
  log(`wrote ${path.relative(repo, OUT)}: ${['scale.json', ...files].join(', ')}`);
} finally {
  for (const f of followers) f.close();
  await cleanup();
}
