#!/usr/bin/env node
// Issue-3 benchmark: create+start+wait of `true` through the Engine with the OCI backend
// (conmon + runc) against raw `runc run` of the same bundle, interleaved in one run, and
// where the engine's extra time goes. Needs root, runc, conmon, busybox-static, and the
// packages built (`pnpm build`). Usage: node bench/runtime/bench.mjs [iterations=30] [--json FILE]
import { execFileSync, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const args = process.argv.slice(2);
const jsonOut = args.includes('--json') ? args[args.indexOf('--json') + 1] : null;
const N = Number(args.find((a) => /^\d+$/.test(a)) ?? 30);
const WARMUP = 3;

if (process.getuid() !== 0) {
  console.error('bench/runtime: needs root (runc)');
  process.exit(2);
}
createRequire(path.join(repo, 'packages/core/package.json'))('reflect-metadata');
const { Engine } = await import(path.join(repo, 'packages/core/dist/index.js'));
const { ociRuntimePlugin, TimingLog } = await import(path.join(repo, 'packages/runtime-oci/dist/index.js'));

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-bench-'));
const rootfs = path.join(tmp, 'rootfs');
execFileSync('bash', [path.join(repo, 'scripts/build-test-rootfs.sh'), rootfs], { stdio: 'ignore' });
const execRoot = path.join(tmp, 'exec');
const timings = new TimingLog();
const runtime = ociRuntimePlugin({ runtimes: { runc: { path: 'runc' } }, timings });
const engine = await Engine.create({ dataRoot: path.join(tmp, 'data'), execRoot, plugins: [runtime], defaultRuntime: 'runc' });
const rawRoot = path.join(tmp, 'raw-runc-state');
const ms = (a, b) => Number(b - a) / 1e6;
const now = () => process.hrtime.bigint();

async function engineRun(n) {
  const r = {};
  let t = now();
  const { Id } = await engine.containers.create({ name: `bench-${n}`, Config: { Cmd: ['/bin/true'] }, HostConfig: { NetworkMode: 'none' }, rootfs });
  r.create = ms(t, now());
  const t0 = now();
  const waited = engine.containers.wait(Id, 'next-exit');
  await engine.containers.start(Id);
  const tStarted = now();
  r.start = ms(t0, tStarted);
  const w = await waited;
  if (w.StatusCode !== 0) throw new Error(`true exited ${w.StatusCode}`);
  const tDone = now();
  r.afterStart = ms(tStarted, tDone);
  r.total = r.create + ms(t0, tDone);
  r.id = Id;
  return r;
}

async function engineRemove(id) {
  const t = now();
  await engine.containers.remove(id, { force: true });
  return ms(t, now());
}

function runcRun(bundle, id) {
  return new Promise((resolve, reject) => {
    const t = now();
    const p = spawn('runc', ['--root', rawRoot, 'run', '--bundle', bundle, id], { stdio: 'ignore' });
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve(ms(t, now())) : reject(new Error(`runc run exited ${code}`))));
  });
}

const engineRuns = [];
const rawRuns = [];
const removes = [];
try {
  // The raw bundle: the config.json the engine produced for a template container (kept until
  // the end so that the files it bind-mounts exist), with its own cgroup path per run.
  const template = await engineRun('template');
  const spec = engine.containers.specOf(template.id);
  if (!spec) throw new Error('the engine kept no spec of the template container');
  const rawBundle = path.join(tmp, 'raw-bundle');
  fs.mkdirSync(rawBundle, { mode: 0o700 });
  function writeRawSpec(id) {
    const s = JSON.parse(JSON.stringify(spec));
    if (s.linux?.cgroupsPath) s.linux.cgroupsPath = s.linux.cgroupsPath.replace(template.id, id);
    fs.writeFileSync(path.join(rawBundle, 'config.json'), JSON.stringify(s));
  }

  for (let i = 0; i < WARMUP + N; i++) {
    // Interleave (and alternate which goes first) so that both see the same machine load.
    const order = i % 2 ? ['raw', 'engine'] : ['engine', 'raw'];
    for (const which of order) {
      if (which === 'engine') {
        const r = await engineRun(i);
        r.backend = timings.get(r.id) ?? {};
        const rm = await engineRemove(r.id);
        if (i >= WARMUP) {
          engineRuns.push(r);
          removes.push(rm);
        }
      } else {
        const id = `raw-${i}-${process.pid}`;
        writeRawSpec(id);
        const t = await runcRun(rawBundle, id);
        if (i >= WARMUP) rawRuns.push(t);
      }
    }
  }
  await engineRemove(template.id);
  await engine.close();

} catch (err) {
  console.error('bench/runtime failed:', err);
  await engine.close().catch(() => {});
  execFileSync('bash', ['-c', `for id in $(runc --root ${rawRoot} list -q 2>/dev/null); do runc --root ${rawRoot} delete -f $id; done`], { stdio: 'ignore' });
  fs.rmSync(tmp, { recursive: true, force: true });
  process.exit(2);
}
const q = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * (s.length - 1) + 0.5))];
};
const med = (xs) => q(xs, 0.5);
const col = (f) => engineRuns.map(f).filter((v) => typeof v === 'number');
const engineTotal = med(col((r) => r.total));
const raw = med(rawRuns);
const rows = [
  ['engine create+start+wait (total)', col((r) => r.total)],
  ['raw `runc run` of the same bundle', rawRuns],
  ['  engine: create (record, name, config files)', col((r) => r.create)],
  ['  engine: start() until it returns', col((r) => r.start)],
  ['    backend: bundle dir + config.json', col((r) => r.backend.prepare)],
  ['    backend: conmon spawn → pid (runc create)', col((r) => r.backend.monitorCreate)],
  ['    backend: runc start', col((r) => r.backend.start)],
  ['    engine: hooks, spec build, state saves', col((r) => r.start - (r.backend.prepare ?? 0) - (r.backend.monitorCreate ?? 0) - (r.backend.start ?? 0))],
  ['  start() return → wait() resolves', col((r) => r.afterStart)],
  ['    backend: exit file mtime → exit event', col((r) => r.backend.exitNotify)],
  ['  (not timed above) remove', removes],
];
const lines = [];
lines.push(`bench/runtime: ${N} runs each (+${WARMUP} warm-up), interleaved; ${os.cpus().length} CPUs, load ${os.loadavg()[0].toFixed(2)}`);
lines.push(`${'step'.padEnd(50)} ${'median'.padStart(9)} ${'p10'.padStart(9)} ${'p90'.padStart(9)}`);
for (const [name, xs] of rows) {
  if (!xs.length) continue;
  lines.push(`${name.padEnd(50)} ${med(xs).toFixed(1).padStart(7)}ms ${q(xs, 0.1).toFixed(1).padStart(7)}ms ${q(xs, 0.9).toFixed(1).padStart(7)}ms`);
}
const ratio = engineTotal / raw;
lines.push(`engine median / raw runc median = ${ratio.toFixed(2)}× (target ≤ 2×): ${ratio <= 2 ? 'MET' : 'NOT MET'}`);
console.log(lines.join('\n'));
if (jsonOut) {
  fs.writeFileSync(jsonOut, JSON.stringify({ n: N, engineMedianMs: engineTotal, rawMedianMs: raw, ratio, engineRuns, rawRuns, removes }, null, 2));
}
fs.rmSync(tmp, { recursive: true, force: true });
process.exit(ratio <= 2 ? 0 : 1);
