#!/usr/bin/env node
// Issue-15 benchmark: networking side by side with Debian's dockerd (own containerd), interleaved:
//  1. `docker run --rm IMAGE true` on the default bridge (each engine its own bridge and subnet
//     in 198.18.0.0/15; no MASQUERADE on either side: dockerd --ip-masq=false);
//  2. connections through a port published on 0.0.0.0: each opens a TCP connection, sends
//     `GET / HTTP/1.0` to busybox httpd in the container and reads to the end —
//     - to the engine's bridge gateway address: DNAT on both (berth: CNI portmap; dockerd:
//       --iptables=true, its DOCKER chain),
//     - to 127.0.0.1: the userland proxy on both (berth's in-daemon proxy; dockerd's docker-proxy,
//       --userland-proxy=true),
//     - to the container's address directly as the floor.
// Needs root, dockerd, docker-proxy, runc, conmon, the CNI plugins, iptables. Puts ip_forward
// back, removes the iptables rules and chains the engines made (dockerd's DOCKER ones and its
// policies, portmap's CNI-HOSTPORT/CNI-DN ones), both bridges and its work dir, also on failure.
//
//   node bench/network.mjs [--runs N] [--conns N] [--out FILE.json]
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { DOCKER, dockerEnv, timed } from './lib/cli.mjs';
import { Berth, Reference, unmountBelow } from './lib/engines.mjs';
import { benchSetup, startWithTestImage } from './lib/setup.mjs';
import { median, ms, now, quantile } from './lib/stats.mjs';

const { repo, opt, log, work, cliDir, loads, loadNow } = benchSetup('net', '/tmp/bn-');
const RUNS = Number(opt('--runs', 15));
const CONNS = Number(opt('--conns', 1000));
const IN_FLIGHT = 16;
const IMAGE = 'berth-test/busybox';
const FORWARD = '/proc/sys/net/ipv4/ip_forward';
const REF_BRIDGE = 'docker0';
const BERTH_BRIDGE = 'bbench0';
const PORT = { berth: 18091, dockerd: 18092 };

const forward = fs.readFileSync(FORWARD, 'utf8');

/** iptables -S of a table, one rule or chain a line. */
const iptablesS = (table) => execFileSync('iptables', ['-w', '-t', table, '-S'], { encoding: 'utf8' }).split('\n').filter(Boolean);
const TABLES = ['filter', 'nat'];
const iptablesBefore = Object.fromEntries(TABLES.map((t) => [t, iptablesS(t)]));

/**
 * Undo what the engines left in iptables: dockerd --iptables=true leaves its rules and chains
 * when it stops, berthd (CNI portmap) its shared CNI-HOSTPORT-DNAT chain and the jumps to it.
 * Rules and chains naming DOCKER, dockerd's bridge or CNI-HOSTPORT/CNI-DN that were not there
 * before go, and the policies dockerd changed come back; others' rules (other processes on the
 * machine change iptables too) are left alone.
 */
function undoEngineIptables() {
  const ipt = (args) => {
    try {
      execFileSync('iptables', ['-w', ...args], { stdio: 'ignore' });
    } catch {
      // gone meanwhile, or still referenced
    }
  };
  for (const t of TABLES) {
    const before = new Set(iptablesBefore[t]);
    const now = iptablesS(t);
    const ours = (l) => !before.has(l) && (/DOCKER|CNI-HOSTPORT|CNI-DN-/.test(l) || l.includes(REF_BRIDGE));
    const chains = now.filter((x) => x.startsWith('-N ') && ours(x)).map((x) => x.slice(3));
    // the jumps into new chains from chains that stay (no quoted comments in those), then the new chains
    for (const l of now.filter((x) => x.startsWith('-A ') && ours(x) && !chains.includes(x.split(' ')[1]))) ipt(['-t', t, '-D', ...l.slice(3).split(' ')]);
    for (const c of chains) ipt(['-t', t, '-F', c]);
    for (const c of chains) ipt(['-t', t, '-X', c]);
    for (const l of iptablesBefore[t].filter((x) => x.startsWith('-P '))) if (!now.includes(l)) ipt(['-t', t, ...l.split(' ')]);
  }
}

/** One connection: connect, GET /, read to the end; resolves the milliseconds it took. */
function oneRequest(host, port) {
  return new Promise((resolve, reject) => {
    const t = now();
    const s = net.createConnection({ host, port }, () => s.end('GET / HTTP/1.0\r\n\r\n'));
    let got = 0;
    s.on('data', (d) => (got += d.length));
    s.on('close', () => (got ? resolve(ms(t, now())) : reject(new Error(`no answer from ${host}:${port}`))));
    s.on('error', reject);
    s.setTimeout(20_000, () => s.destroy(new Error('timed out')));
  });
}

/** CONNS requests, IN_FLIGHT at a time: requests per second and latency quantiles. */
async function connectRate(host, port) {
  const lat = [];
  let next = 0;
  const t = now();
  const worker = async () => {
    while (next < CONNS) {
      next++;
      lat.push(await oneRequest(host, port));
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  const wall = ms(t, now());
  return { perSecond: (CONNS / wall) * 1000, median: median(lat), p99: quantile(lat, 0.99) };
}

const ref = new Reference(work, {
  networkArgs: ['--iptables=true', '--ip6tables=false', '--ip-forward=false', '--ip-masq=false', '--bip=198.18.201.1/24', '--userland-proxy=true', '--userland-proxy-path=/usr/sbin/docker-proxy'],
});
const GATEWAY = { berth: '198.18.202.1', dockerd: '198.18.201.1' };
const berth = new Berth(work, repo, { daemonJson: { bridge: BERTH_BRIDGE, bip: '198.18.202.1/24' } });
const engines = [berth, ref];
const envOf = (e) => dockerEnv(e.sock, cliDir);
const R = { date: new Date().toISOString(), runs: RUNS, conns: CONNS, inFlight: IN_FLIGHT, machine: `${os.cpus().length} CPUs, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, Linux ${os.release()}`, run: {}, ports: {}, loads };

try {
  log(`work dir ${work}; load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  await startWithTestImage(engines, { work, log, envOf });

  // 1. docker run --rm on the default bridge, interleaved (each round rotates who goes first)
  log(`run --rm on the default bridge ×${RUNS} (load ${loadNow()})`);
  const runs = { berth: [], dockerd: [] };
  for (const e of engines) await timed(DOCKER, ['run', '--rm', IMAGE, 'true'], { env: envOf(e) }); // warm-up
  for (let i = 0; i < RUNS; i++) {
    for (const e of i % 2 ? [ref, berth] : [berth, ref]) runs[e.name].push((await timed(DOCKER, ['run', '--rm', IMAGE, 'true'], { env: envOf(e) })).ms);
  }
  for (const n of ['berth', 'dockerd']) R.run[n] = { median: median(runs[n]), p90: quantile(runs[n], 0.9), samples: runs[n] };
  log(`run --rm: berth ${R.run.berth.median.toFixed(0)} ms, dockerd ${R.run.dockerd.median.toFixed(0)} ms (load ${loadNow()})`);

  // 2. requests through a published port (DNAT via the gateway, the proxy via 127.0.0.1), and to the container directly
  const script = 'mkdir -p /www && echo bench > /www/index.html && exec httpd -f -p 80 -h /www';
  for (const e of engines) {
    await timed(DOCKER, ['run', '-d', '--name', 'bn-web', '-p', `${PORT[e.name]}:80`, IMAGE, 'sh', '-c', script], { env: envOf(e) });
    const ip = (await timed(DOCKER, ['inspect', '-f', '{{.NetworkSettings.IPAddress}}', 'bn-web'], { env: envOf(e), capture: true })).stdout.trim();
    for (let i = 0; i < 100; i++) if (await oneRequest('127.0.0.1', PORT[e.name]).then(() => true, () => false)) break;
    R.ports[e.name] = { ip };
  }
  for (let round = 0; round < 2; round++) {
    for (const e of round ? [ref, berth] : [berth, ref]) {
      log(`${CONNS} requests via ${e.name}'s published port on its gateway address: DNAT (load ${loadNow()})`);
      (R.ports[e.name].dnat ??= []).push(await connectRate(GATEWAY[e.name], PORT[e.name]));
      log(`${CONNS} requests via ${e.name}'s published port on 127.0.0.1: the proxy (load ${loadNow()})`);
      (R.ports[e.name].published ??= []).push(await connectRate('127.0.0.1', PORT[e.name]));
      log(`${CONNS} requests to ${e.name}'s container address directly (load ${loadNow()})`);
      (R.ports[e.name].direct ??= []).push(await connectRate(R.ports[e.name].ip, 80));
    }
  }
  for (const e of engines) await timed(DOCKER, ['rm', '-f', 'bn-web'], { env: envOf(e) });
  console.log(JSON.stringify(R, null, 1));
  const out = opt('--out', null);
  if (out) fs.writeFileSync(out, `${JSON.stringify(R, null, 1)}\n`);
} finally {
  for (const e of engines) await e.stop(log).catch((err) => log(`stop ${e.name}: ${err.message}`));
  undoEngineIptables();
  unmountBelow(work, log);
  for (const b of [REF_BRIDGE, BERTH_BRIDGE]) {
    try {
      execFileSync('ip', ['link', 'del', b], { stdio: 'ignore' });
    } catch {
      // not made, or gone with its daemon
    }
  }
  fs.writeFileSync(FORWARD, forward);
  fs.rmSync(work, { recursive: true, force: true });
}
