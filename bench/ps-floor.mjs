#!/usr/bin/env node
// Issue-18 `docker ps -a` at N containers: how much of the CLI call is the daemon and how much
// the CLI itself, and whether the way the answer is sent matters. berthd and Debian's dockerd
// (own containerd) each get N created containers (`--network none`, not started); then k
// interleaved rounds time `docker ps -a --no-trunc` against: each live daemon; a canned server
// in this process that answers /_ping and the list with the bytes that daemon answered,
// recorded once (the CLI's floor for that answer: no daemon work at all) — sent with
// Content-Length in one write, as one chunk (Transfer-Encoding: chunked), and in 2 KiB chunks
// each its own write; and an empty list (the CLI's start, /_ping and one request). The API
// call alone (GET /containers/json?all=1) is timed against each live daemon in the same rounds.
// Needs root, dockerd, containerd, runc; stops everything it started, also on failure.
//
//   node bench/ps-floor.mjs [--containers N] [--reps K] [--out DIR]      (defaults 1000, 15)
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { DOCKER, dockerEnv, timed } from './lib/cli.mjs';
import { Berth, Reference } from './lib/engines.mjs';
import { pool } from './lib/http.mjs';
import { benchSetup, cleanupOnce, startWithTestImage } from './lib/setup.mjs';
import { median, ms, now, quantile } from './lib/stats.mjs';

const { repo, opt, log, work, cliDir, loadNow } = benchSetup('ps-floor', '/tmp/bb-');
fs.writeFileSync(path.join(work, 'bench.pid'), `${process.pid}\n`); // bench/cleanup.sh accepts /tmp/bb-*
const N = Number(opt('--containers', 1000));
const REPS = Number(opt('--reps', 15));
const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z').replace(/^(\d{4})(\d{2})(\d{2})/, '$1-$2-$3');
const OUT = opt('--out', path.join(repo, 'bench', 'results', `${stamp}-ps-floor`));
const IMAGE = 'berth-test/busybox';

const berth = new Berth(work, repo, { daemonJson: { bridge: 'none' } });
const ref = new Reference(work);
const engines = [berth, ref];

/** One GET over the engine's socket: status, headers, body bytes and how long it took (ms). */
function fetchRaw(sock, p) {
  return new Promise((resolve, reject) => {
    const t = now();
    const req = http.get({ socketPath: sock, path: p, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks), ms: ms(t, now()) }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

/**
 * A server on a unix socket answering /_ping and /vX/containers/json from a recording:
 * `mode` 'length' (Content-Length, one write), 'chunk' (chunked, one chunk), 'chunks2k'
 * (chunked, 2 KiB per write). Anything else: 404.
 */
function cannedServer(sock, ping, list, mode) {
  const server = http.createServer((req, res) => {
    const head = (rec) => {
      res.statusCode = rec.status;
      for (const [k, v] of Object.entries(rec.headers)) if (!['content-length', 'transfer-encoding', 'date', 'connection', 'keep-alive'].includes(k)) res.setHeader(k, v);
    };
    if (req.url === '/_ping' || /^\/v[\d.]+\/_ping$/.test(req.url)) {
      head(ping);
      res.setHeader('Content-Length', ping.body.length);
      res.end(req.method === 'HEAD' ? undefined : ping.body);
      return;
    }
    if (/^\/v[\d.]+\/containers\/json\?/.test(req.url)) {
      head(list);
      if (mode === 'length') {
        res.setHeader('Content-Length', list.body.length);
        res.end(list.body);
      } else if (mode === 'chunk') {
        res.end(list.body);
      } else {
        for (let i = 0; i < list.body.length; i += 2048) res.write(list.body.subarray(i, i + 2048));
        res.end();
      }
      return;
    }
    res.statusCode = 404;
    res.end('{"message":"not in the recording"}\n');
  });
  return new Promise((resolve) => server.listen(sock, () => resolve(server)));
}

const R = { date: new Date().toISOString(), containers: N, reps: REPS, machine: `${os.cpus().length} CPUs, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, Linux ${os.release()}`, loads: [], answers: {}, targets: {} };
const servers = [];
const cleanup = cleanupOnce(engines, { work, log, before: () => servers.forEach((s) => s.close()) });
try {
  R.loads.push({ at: 'start', load1: Number(loadNow()) });
  await startWithTestImage(engines, { work, log, envOf: (e) => dockerEnv(e.sock, cliDir) });
  const CMD = ['sh', '-c', 'trap "exit 0" TERM; sleep 3600 & wait'];
  for (const e of engines) {
    const t = now();
    await pool(N, 8, (i) => e.api.call('POST', `/containers/create?name=ps-${i}`, { Image: IMAGE, Cmd: CMD, Labels: { 'bench.pop': '1' }, HostConfig: { NetworkMode: 'none' } }));
    log(`${e.name}: ${N} containers created in ${(ms(t, now()) / 1000).toFixed(1)} s`);
  }
  // The CLI negotiates the version each daemon offers (berth 1.50, dockerd 20.10 1.41): record what it asks for.
  const targets = [];
  for (const e of engines) {
    const ping = await fetchRaw(e.sock, '/_ping');
    const version = ping.headers['api-version'];
    const list = await fetchRaw(e.sock, `/v${version}/containers/json?all=1`);
    const count = JSON.parse(list.body.toString('utf8')).length;
    if (count < N) throw new Error(`${e.name} listed ${count} containers, expected ${N}`);
    R.answers[e.name] = { apiVersion: version, bytes: list.body.length, entries: count, transferEncoding: list.headers['transfer-encoding'] ?? null, contentLength: list.headers['content-length'] ?? null };
    log(`${e.name}: API ${version}, answer ${list.body.length} bytes, ${list.headers['content-length'] ? `Content-Length` : `Transfer-Encoding: ${list.headers['transfer-encoding']}`}`);
    targets.push({ name: `${e.name} (live)`, sock: e.sock, api: { sock: e.sock, path: `/v${version}/containers/json?all=1` } });
    for (const mode of ['length', 'chunk', 'chunks2k']) {
      const sock = path.join(work, `canned-${e.name}-${mode}.sock`);
      servers.push(await cannedServer(sock, ping, list, mode));
      targets.push({ name: `${e.name}'s answer, canned, ${mode === 'length' ? 'Content-Length, one write' : mode === 'chunk' ? 'chunked, one chunk' : 'chunked, 2 KiB writes'}`, sock });
    }
    if (e === berth) {
      const sock = path.join(work, 'canned-empty.sock');
      servers.push(await cannedServer(sock, ping, { ...list, body: Buffer.from('[]\n') }, 'length'));
      targets.push({ name: 'empty list, canned (CLI start + /_ping + one request)', sock });
    }
  }
  const acc = Object.fromEntries(targets.map((t) => [t.name, { cli: [], api: [] }]));
  for (let rep = -1; rep < REPS; rep++) {
    const order = rep % 2 ? targets : [...targets].reverse();
    for (const t of order) {
      const cli = await timed(DOCKER, ['ps', '-a', '--no-trunc'], { env: dockerEnv(t.sock, cliDir), capture: true });
      const rows = cli.stdout.trim().split('\n').length - 1;
      if (!t.name.startsWith('empty') && rows < N) throw new Error(`${t.name}: docker ps -a showed ${rows} rows`);
      if (rep < 0) continue; // warm-up round
      acc[t.name].cli.push(cli.ms);
      if (t.api) acc[t.name].api.push((await fetchRaw(t.api.sock, t.api.path)).ms);
    }
  }
  R.loads.push({ at: 'end', load1: Number(loadNow()) });
  for (const t of targets) {
    const a = acc[t.name];
    R.targets[t.name] = { cli: { median: median(a.cli), p90: quantile(a.cli, 0.9), values: a.cli }, ...(a.api.length ? { api: { median: median(a.api), p90: quantile(a.api, 0.9), values: a.api } } : {}) };
    log(`${t.name}: docker ps -a ${median(a.cli).toFixed(1)} ms (p90 ${quantile(a.cli, 0.9).toFixed(1)})${a.api.length ? `, API alone ${median(a.api).toFixed(1)} ms` : ''}`);
  }
  const b = R.targets['berth (live)'].cli.median;
  const d = R.targets['dockerd (live)'].cli.median;
  log(`docker ps -a at ${N}: berth / dockerd ${(b / d).toFixed(2)} (load ${R.loads.map((l) => l.load1.toFixed(1)).join(' → ')})`);
  fs.mkdirSync(OUT, { recursive: true });
  fs.writeFileSync(path.join(OUT, 'ps-floor.json'), `${JSON.stringify(R, null, 1)}\n`);
  log(`wrote ${path.relative(repo, OUT)}/ps-floor.json`);
} finally {
  await cleanup();
}
