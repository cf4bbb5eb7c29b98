#!/usr/bin/env node
/**
 * Pull + unpack of a ~100 MB image from a local docker-registry (127.0.0.1), berth vs dockerd,
 * side by side in one run. Needs root for dockerd (skipped with a reason otherwise), Debian's
 * docker-registry, and the built image-store package (run.sh builds it).
 *
 *   node bench/images/pull-bench.mjs [--mb 100] [--layers 4] [--runs 1]
 */
/* global fetch */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
// tsyringe (via @berth/core) needs the reflect polyfill before it loads
await import(path.join(here, '../../packages/image-store/node_modules/reflect-metadata/Reflect.js'));
const { ImageService, mountPoints } = await import(path.join(here, '../../packages/image-store/dist/index.js'));

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? def : Number(args[i + 1]);
};
const totalMb = opt('mb', 100);
const layers = opt('layers', 4);
const runs = opt('runs', 1);

const which = (bin) => (process.env.PATH ?? '').split(':').some((d) => fs.existsSync(path.join(d, bin))) || fs.existsSync(`/usr/sbin/${bin}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const freePort = () =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-bench-images-'));
const children = [];
async function cleanup() {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) {
    c.kill('SIGTERM');
    await new Promise((r) => { const t = setTimeout(() => { c.kill('SIGKILL'); r(); }, 15000); c.once('exit', () => { clearTimeout(t); r(); }); });
  }
  for (const m of [...mountPoints()].filter((m) => m.startsWith(dir)).sort((a, b) => b.length - a.length)) {
    try { execFileSync('umount', ['-l', m]); } catch { /* gone */ }
  }
  fs.rmSync(dir, { recursive: true, force: true });
}
process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));

try {
  if (!which('docker-registry')) throw new Error('docker-registry is not installed (apt-get install -y docker-registry)');
  // 1. a local registry
  const port = await freePort();
  fs.writeFileSync(path.join(dir, 'registry.yml'), `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/registry\nhttp:\n  addr: 127.0.0.1:${port}\n`);
  const reg = spawn('docker-registry', ['serve', path.join(dir, 'registry.yml')], { stdio: 'ignore' });
  children.push(reg);
  for (let i = 0; ; i++) {
    try { const r = await fetch(`http://127.0.0.1:${port}/v2/`); if (r.ok) break; } catch { /* starting */ }
    if (i > 150) throw new Error('docker-registry did not start');
    await sleep(100);
  }

  // 2. build a ~totalMb image (half random, half compressible text per layer) and push it with berth
  const src = new ImageService({ dataRoot: path.join(dir, 'src'), rootfsDriver: 'copy' });
  await src.init();
  const perLayer = Math.floor((totalMb * 1e6) / layers);
  let parent = null;
  const diffIds = [];
  for (let l = 0; l < layers; l++) {
    const root = path.join(dir, `layer${l}`);
    fs.mkdirSync(path.join(root, `data${l}`), { recursive: true });
    const files = 20;
    for (let f = 0; f < files; f++) {
      const n = Math.floor(perLayer / files);
      const buf = f % 2 === 0 ? randomBytes(n) : Buffer.from(`line ${l}-${f} lorem ipsum dolor sit amet\n`.repeat(Math.ceil(n / 40))).subarray(0, n);
      fs.writeFileSync(path.join(root, `data${l}`, `file${f}`), buf);
    }
    const tarFile = path.join(dir, `layer${l}.tar`);
    execFileSync('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '-C', root, '-cf', tarFile, `data${l}`]);
    const meta = await src.store.layers.register(fs.createReadStream(tarFile), parent);
    parent = meta.chainId;
    diffIds.push(meta.diffId);
    fs.rmSync(root, { recursive: true, force: true });
    fs.rmSync(tarFile);
  }
  const cfg = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['sh'] }, rootfs: { type: 'layers', diff_ids: diffIds } }));
  const id = await src.store.createImage(cfg);
  const name = `127.0.0.1:${port}/bench`;
  await src.tag(id, name, 'v1');
  await src.push(name, { tag: 'v1' });
  await src.close();
  fs.rmSync(path.join(dir, 'src'), { recursive: true, force: true });
  const compressed = JSON.parse(Buffer.from(await (await fetch(`http://127.0.0.1:${port}/v2/bench/manifests/v1`, { headers: { Accept: 'application/vnd.docker.distribution.manifest.v2+json' } })).arrayBuffer()).toString()).layers.reduce((a, l) => a + l.size, 0);

  const results = [];
  // 3. berth
  for (let r = 0; r < runs; r++) {
    const svc = new ImageService({ dataRoot: path.join(dir, `berth${r}`) });
    await svc.init();
    const t0 = process.hrtime.bigint();
    const got = await svc.pull(`${name}:v1`);
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    if (got !== id) throw new Error(`berth pulled ${got}, expected ${id}`);
    results.push({ engine: 'berth', run: r + 1, seconds: s });
    await svc.close();
    fs.rmSync(path.join(dir, `berth${r}`), { recursive: true, force: true });
  }

  // 4. dockerd (its own data-root, exec-root, socket; no bridge, no iptables)
  let dockerNote = '';
  if (process.getuid?.() !== 0) dockerNote = 'skipped: dockerd needs root';
  else if (!which('dockerd') || !which('docker')) dockerNote = 'skipped: dockerd or the docker CLI is not installed';
  else {
    for (let r = 0; r < runs; r++) {
      const d = path.join(dir, `dockerd${r}`);
      fs.mkdirSync(d, { recursive: true });
      fs.writeFileSync(path.join(d, 'daemon.json'), '{}');
      const sock = path.join(d, 'docker.sock');
      const log = fs.openSync(path.join(d, 'dockerd.log'), 'w');
      const dd = spawn(fs.existsSync('/usr/sbin/dockerd') ? '/usr/sbin/dockerd' : 'dockerd', [
        '--config-file', path.join(d, 'daemon.json'), '--data-root', path.join(d, 'data'), '--exec-root', path.join(d, 'exec'),
        '-H', `unix://${sock}`, '--pidfile', path.join(d, 'docker.pid'), '--bridge', 'none', '--iptables=false', '--storage-driver', 'overlay2', '--log-level', 'error',
      ], { stdio: ['ignore', log, log] });
      children.push(dd);
      const env = { ...process.env, DOCKER_HOST: `unix://${sock}`, DOCKER_CONFIG: d };
      let up = false;
      for (let i = 0; i < 300 && dd.exitCode === null; i++) {
        try { execFileSync('docker', ['version', '--format', '{{.Server.Version}}'], { env, stdio: 'ignore' }); up = true; break; } catch { await sleep(100); }
      }
      if (!up) { dockerNote = `skipped: dockerd did not start (${fs.readFileSync(path.join(d, 'dockerd.log'), 'utf8').trim().split('\n').pop()})`; break; }
      const t0 = process.hrtime.bigint();
      execFileSync('docker', ['pull', '-q', `${name}:v1`], { env, stdio: 'ignore' });
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      const gotId = execFileSync('docker', ['image', 'inspect', '-f', '{{.Id}}', `${name}:v1`], { env, encoding: 'utf8' }).trim();
      results.push({ engine: `dockerd ${execFileSync('docker', ['version', '--format', '{{.Server.Version}}'], { env, encoding: 'utf8' }).trim()}`, run: r + 1, seconds: s, sameId: gotId === id });
      dd.kill('SIGTERM');
      await new Promise((res) => dd.once('exit', res));
    }
  }

  const mb = (n) => (n / 1e6).toFixed(1);
  console.log(`image: ${layers} layers, ${mb(diffIds.length ? totalMb * 1e6 : 0)} MB uncompressed, ${mb(compressed)} MB compressed, registry 127.0.0.1:${port}`);
  console.log('| engine | run | pull + unpack (s) | MB/s (uncompressed) | same image ID |');
  console.log('|---|---|---|---|---|');
  for (const r of results) console.log(`| ${r.engine} | ${r.run} | ${r.seconds.toFixed(2)} | ${(totalMb / r.seconds).toFixed(1)} | ${r.sameId === false ? 'no' : 'yes'} |`);
  if (dockerNote) console.log(`dockerd: ${dockerNote}`);
} catch (err) {
  console.error(`bench failed: ${err?.stack ?? err}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
