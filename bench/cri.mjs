#!/usr/bin/env node
// Issue-17 benchmark: pod start latency over the CRI, berthd's cri plugin against containerd's
// CRI (Debian's containerd, started here on its own root, state and sockets), interleaved.
// One sample = RunPodSandbox + CreateContainer + StartContainer of a pod with one busybox
// `sleep` container (the pod on a CNI network: on each side the reference bridge plugin with
// host-local on its own bridge and test subnet, no NAT), then — timed apart — the teardown
// kubelet does: StopContainer (timeout 0), StopPodSandbox, RemovePodSandbox.
// containerd needs a sandbox ("pause") image and there is no registry: a busybox image whose
// command is `sleep` is built on berthd (`docker build`), saved, and imported with
// `ctr -n k8s.io images import`; containerd's config names it as `sandbox_image`. berth's pods
// are pause-less (docs/cri.md). Both get the same busybox test image for the container.
// Needs root, containerd + ctr + containerd-shim-runc-v2, runc, conmon, the CNI plugins bridge,
// host-local and loopback, the docker CLI; where containerd is absent it says so and exits 0.
// Puts ip_forward back, removes both bridges, containerd's shims, every mount and the work dir,
// also on failure.
//
//   node bench/cri.mjs [--runs N] [--out DIR] [--keep]   (default DIR: bench/results/<UTC stamp>-cri;
//   --keep leaves the work dir, logs and configs, for a look after a failure)
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { DOCKER, dockerEnv, timed } from './lib/cli.mjs';
import { Berth, unmountBelow } from './lib/engines.mjs';
import { findProcs } from './lib/procs.mjs';
import { REPO, benchSetup, startWithTestImage } from './lib/setup.mjs';
import { median, ms, now, quantile } from './lib/stats.mjs';

const argv = process.argv.slice(2);
const RUNS = Number(argv.includes('--runs') ? argv[argv.indexOf('--runs') + 1] : 20);
const WARMUP = 2;
const IMAGE = 'berth-test/busybox';
const PAUSE = 'berth-bench/pause:latest';
const CNI_BIN = '/usr/lib/cni';
const FORWARD = '/proc/sys/net/ipv4/ip_forward';
const NET = { berth: { bridge: 'bcri-b0', subnet: '198.18.212.0/24' }, containerd: { bridge: 'bcri-c0', subnet: '198.18.213.0/24' } };
const NS = { POD: 0, CONTAINER: 1 };

const have = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
const missing = [
  ...['containerd', 'ctr', 'containerd-shim-runc-v2', 'runc', 'conmon', 'nsenter'].filter((c) => !have(c)),
  ...['bridge', 'host-local', 'loopback'].filter((p) => !fs.existsSync(path.join(CNI_BIN, p))).map((p) => `${CNI_BIN}/${p}`),
  ...(fs.existsSync(DOCKER) || have(DOCKER) ? [] : [DOCKER]),
];
if (missing.length) {
  console.log(`bench cri: skipped — missing ${missing.join(', ')}`);
  process.exit(0);
}
const { repo, opt, log, work, cliDir, loads, loadNow } = benchSetup('cri', '/tmp/bc-');
createRequire(path.join(REPO, 'packages/core/package.json'))('reflect-metadata'); // the plugin's package loads tsyringe
const { connectCri } = await import(path.join(REPO, 'plugins/cri/dist/index.js'));
const forward = fs.readFileSync(FORWARD, 'utf8');
const sleep = (t) => new Promise((r) => setTimeout(r, t));

// ---- containerd with its CRI plugin, on its own everything ----
const ctd = { dir: path.join(work, 'ctd') };
ctd.sock = path.join(ctd.dir, 'c.sock');
const ctr = (args) => execFileSync('ctr', ['--address', ctd.sock, '-n', 'k8s.io', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

function containerdConfig() {
  const netd = path.join(ctd.dir, 'net.d');
  fs.mkdirSync(netd, { recursive: true });
  const conflist = {
    cniVersion: '1.0.0',
    name: 'bench-cri',
    plugins: [{ type: 'bridge', bridge: NET.containerd.bridge, isGateway: true, ipMasq: false, hairpinMode: true, ipam: { type: 'host-local', ranges: [[{ subnet: NET.containerd.subnet }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: path.join(ctd.dir, 'ipam') } }],
  };
  fs.writeFileSync(path.join(netd, '10-bench.conflist'), JSON.stringify(conflist));
  const q = JSON.stringify;
  return [
    'version = 2',
    `root = ${q(path.join(ctd.dir, 'root'))}`,
    `state = ${q(path.join(ctd.dir, 'state'))}`,
    'disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]',
    '[grpc]',
    `  address = ${q(ctd.sock)}`,
    '[ttrpc]',
    `  address = ${q(`${ctd.sock}.ttrpc`)}`,
    '[debug]',
    '  address = ""',
    '[metrics]',
    '  address = ""',
    '[plugins."io.containerd.grpc.v1.cri"]',
    `  sandbox_image = ${q(`docker.io/${PAUSE}`)}`,
    '  stream_server_address = "127.0.0.1"',
    '  stream_server_port = "0"',
    '  restrict_oom_score_adj = true', // the sandbox's oom_score_adj -998 is refused without CAP_SYS_RESOURCE (a container)
    '  [plugins."io.containerd.grpc.v1.cri".containerd]',
    '    snapshotter = "overlayfs"',
    '    default_runtime_name = "runc"',
    '    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]',
    '      runtime_type = "io.containerd.runc.v2"',
    '  [plugins."io.containerd.grpc.v1.cri".cni]',
    `    bin_dir = ${q(CNI_BIN)}`,
    `    conf_dir = ${q(netd)}`,
    '    max_conf_num = 1',
  ].join('\n');
}

async function startContainerd() {
  fs.mkdirSync(ctd.dir, { recursive: true });
  fs.writeFileSync(path.join(ctd.dir, 'config.toml'), `${containerdConfig()}\n`);
  const fd = fs.openSync(path.join(ctd.dir, 'containerd.log'), 'a');
  ctd.proc = spawn('containerd', ['--config', path.join(ctd.dir, 'config.toml')], { stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  for (let i = 0; ; i++) {
    if (ctd.proc.exitCode !== null) throw new Error(`containerd exited with ${ctd.proc.exitCode}: ${fs.readFileSync(path.join(ctd.dir, 'containerd.log'), 'utf8').slice(-2000)}`);
    if (fs.existsSync(ctd.sock) && spawnSync('ctr', ['--address', ctd.sock, 'version'], { stdio: 'ignore', timeout: 5000 }).status === 0) break;
    if (i > 300) throw new Error('containerd did not answer within 30 s');
    await sleep(100);
  }
  ctd.version = execFileSync('containerd', ['--version'], { encoding: 'utf8' }).trim();
  log(`${ctd.version} up, pid ${ctd.proc.pid}`);
}

async function stopContainerd() {
  if (ctd.proc && ctd.proc.exitCode === null) {
    const exited = new Promise((r) => ctd.proc.once('exit', r));
    ctd.proc.kill('SIGTERM');
    await Promise.race([exited, sleep(15_000).then(() => ctd.proc.kill('SIGKILL'))]);
  }
  // its shims (and their containers) outlive it: they carry our socket in their argv
  for (const pid of findProcs((a) => path.basename(a[0] ?? '') === 'containerd-shim-runc-v2' && a.includes(ctd.sock))) {
    log(`cleanup: killing containerd shim ${pid}`);
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

// ---- the pods ----
let seq = 0;
async function podStart(cri, name) {
  seq++;
  const uid = `bench-${name}-${seq}`;
  const logDir = path.join(work, 'logs', uid);
  fs.mkdirSync(logDir, { recursive: true });
  const config = {
    metadata: { name: `pod-${seq}`, uid, namespace: 'bench', attempt: 0 },
    hostname: `pod-${seq}`,
    log_directory: logDir,
    linux: { security_context: { namespace_options: { network: NS.POD, pid: NS.CONTAINER, ipc: NS.POD } } },
  };
  const container = { metadata: { name: 'c', attempt: 0 }, image: { image: IMAGE }, args: ['sleep', '3600'], log_path: 'c.log', linux: {} };
  const t0 = now();
  const { pod_sandbox_id: pod } = await cri.runtime('RunPodSandbox', { config });
  const t1 = now();
  const { container_id: id } = await cri.runtime('CreateContainer', { pod_sandbox_id: pod, config: container, sandbox_config: config });
  const tc = now();
  await cri.runtime('StartContainer', { container_id: id });
  const t2 = now();
  // not timed: the pod really is on its CNI network
  const ip = (await cri.runtime('PodSandboxStatus', { pod_sandbox_id: pod })).status.network.ip;
  if (!ip) throw new Error(`${name}: pod ${pod} has no IP`);
  const t2b = now();
  await cri.runtime('StopContainer', { container_id: id, timeout: 0 });
  await cri.runtime('StopPodSandbox', { pod_sandbox_id: pod });
  await cri.runtime('RemovePodSandbox', { pod_sandbox_id: pod });
  const t3 = now();
  fs.rmSync(logDir, { recursive: true, force: true });
  return { start: ms(t0, t2), sandbox: ms(t0, t1), create: ms(t1, tc), startContainer: ms(tc, t2), teardown: ms(t2b, t3), ip };
}

async function networkReady(cri, what) {
  for (let i = 0; i < 300; i++) {
    const st = await cri.runtime('Status', {}).catch(() => null);
    const cond = st?.status?.conditions?.find((c) => c.type === 'NetworkReady');
    if (cond?.status) return;
    if (i === 299) throw new Error(`${what}: NetworkReady stays false (${cond?.reason}: ${cond?.message})`);
    await sleep(100);
  }
}

const criSock = path.join(work, 'berth', 'cri.sock');
const berth = new Berth(work, repo, {
  daemonJson: { bridge: 'none', plugins: { builtins: { cri: true }, config: { cri: { socket: criSock, podBridge: NET.berth.bridge, podSubnet: NET.berth.subnet, cniBinDirs: [CNI_BIN] } } } },
});
const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
const outDir = opt('--out', path.join(repo, 'bench/results', `${stamp}-cri`));
const R = { date: new Date().toISOString(), runs: RUNS, warmup: WARMUP, machine: `${os.cpus().length} CPUs, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, Linux ${os.release()}`, sandboxImage: `${PAUSE} (busybox + CMD sleep, built on berthd, ctr images import)`, loads, samples: { berth: [], containerd: [] } };
const clients = {};
const KEYS = ['start', 'sandbox', 'create', 'startContainer', 'teardown'];
const ROW = { start: 'pod start: RunPodSandbox + CreateContainer + StartContainer', sandbox: '… RunPodSandbox', create: '… CreateContainer', startContainer: '… StartContainer', teardown: 'teardown: StopContainer + StopPodSandbox + RemovePodSandbox' };

try {
  log(`work dir ${work}; load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  const imageDir = path.join(work, 'image');
  const env = dockerEnv(berth.sock, cliDir);
  await startWithTestImage([berth], { work, log, envOf: () => env });
  R.berth = berth.version;
  // the sandbox image containerd needs: busybox whose command sleeps (no registry here)
  const ctx = path.join(work, 'pause-ctx');
  fs.mkdirSync(ctx);
  fs.writeFileSync(path.join(ctx, 'Dockerfile'), `FROM ${IMAGE}\nCMD ["sleep", "2147483647"]\n`);
  await timed(DOCKER, ['build', '-q', '-t', PAUSE, ctx], { env: { ...env, DOCKER_BUILDKIT: '0' } });
  await timed(DOCKER, ['save', '-o', path.join(imageDir, 'pause.tar'), PAUSE], { env });

  await startContainerd();
  R.containerd = ctd.version;
  for (const tar of ['busybox.tar', 'pause.tar']) ctr(['images', 'import', path.join(imageDir, tar)]);
  clients.berth = connectCri(criSock);
  clients.containerd = connectCri(ctd.sock);
  for (const [n, c] of Object.entries(clients)) await networkReady(c, n);

  const order = (i) => (i % 2 ? ['containerd', 'berth'] : ['berth', 'containerd']);
  log(`warm-up ×${WARMUP} (load ${loadNow()})`);
  for (let i = 0; i < WARMUP; i++) for (const n of order(i)) await podStart(clients[n], n);
  log(`pod start ×${RUNS}, interleaved (load ${loadNow()})`);
  for (let i = 0; i < RUNS; i++) {
    for (const n of order(i)) R.samples[n].push(await podStart(clients[n], n));
    if (i % 5 === 4) log(`  ${i + 1}/${RUNS} (load ${loadNow()})`);
  }
  const sum = (xs) => ({ median: median(xs), p90: quantile(xs, 0.9), min: Math.min(...xs), max: Math.max(...xs) });
  R.summary = {};
  for (const n of ['berth', 'containerd']) {
    const s = R.samples[n];
    R.summary[n] = Object.fromEntries(KEYS.map((k) => [k, sum(s.map((x) => x[k]))]));
  }
  R.ratio = Object.fromEntries(KEYS.map((k) => [k, R.summary.berth[k].median / R.summary.containerd[k].median]));
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, 'cri.json'), `${JSON.stringify(R, null, 1)}\n`);
  const f = (v) => `${v.toFixed(0)} ms`;
  const lines = [
    `pod start over the CRI, ${RUNS} interleaved runs after ${WARMUP} warm-ups, ${R.date}, ${R.machine}, load ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)}`,
    `berth: ${R.berth}; containerd: ${R.containerd}; sandbox image for containerd: ${R.sandboxImage}`,
    '| | berth median (p90) | containerd median (p90) | berth / containerd |',
    '| --- | --- | --- | --- |',
    ...KEYS.map((k) => `| ${ROW[k]} | ${f(R.summary.berth[k].median)} (${f(R.summary.berth[k].p90)}) | ${f(R.summary.containerd[k].median)} (${f(R.summary.containerd[k].p90)}) | ${R.ratio[k].toFixed(2)} |`),
  ];
  fs.writeFileSync(path.join(outDir, 'summary.md'), `${lines.join('\n')}\n`);
  console.log(lines.join('\n'));
  log(`results in ${outDir}`);
} finally {
  for (const [n, c] of Object.entries(clients)) {
    try {
      for (const p of (await c.runtime('ListPodSandbox', {})).items ?? []) await c.runtime('RemovePodSandbox', { pod_sandbox_id: p.id }).catch((err) => log(`cleanup ${n}: ${err.message}`));
    } catch (err) {
      log(`cleanup ${n}: ${err.message}`);
    }
    c.close();
  }
  await stopContainerd().catch((err) => log(`stop containerd: ${err.message}`));
  await berth.stop(log).catch((err) => log(`stop berth: ${err.message}`));
  unmountBelow(work, log);
  for (const b of [NET.berth.bridge, NET.containerd.bridge]) {
    try {
      execFileSync('ip', ['link', 'del', b], { stdio: 'ignore' });
    } catch {
      // not made, or gone
    }
  }
  fs.writeFileSync(FORWARD, forward);
  if (argv.includes('--keep')) log(`kept ${work}`);
  else fs.rmSync(work, { recursive: true, force: true });
}
