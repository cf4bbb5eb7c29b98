#!/usr/bin/env node
// What runc itself pays for a seccomp filter, by architecture list: raw `runc run` of a busybox
// `true` bundle (no engine), interleaved, with no filter, with Docker's default profile as the
// seccomp plugin compiles it for this host (x86_64 + x86 + x32 on amd64), without x32, and for
// the native arch alone. The difference between the series is runc 1.1/libseccomp building the
// filter in `runc init` for each architecture in the list — the cost a default start pays on
// top of an unconfined one in any engine that hands Docker's profile to runc.
// Root; berth built (the plugin's dist). Usage: node bench/seccomp-runc-arches.mjs [N=20]
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { median, quantile } from './lib/stats.mjs';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
createRequire(path.join(repo, 'packages/core/package.json'))('reflect-metadata');
const { compileProfile, nativeArch, parseProfile } = await import(path.join(repo, 'plugins/seccomp/dist/index.js'));
const N = Number(process.argv[2] ?? 20);
const w = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-seccomp-runc-'));
const root = path.join(w, 'runc-root');
try {
  execFileSync('bash', [path.join(repo, 'scripts/build-test-rootfs.sh'), path.join(w, 'rootfs')], { stdio: 'ignore' });
  execFileSync('runc', ['spec'], { cwd: w });
  const base = JSON.parse(fs.readFileSync(path.join(w, 'config.json'), 'utf8'));
  base.process.terminal = false;
  base.process.args = ['/bin/true'];
  const profile = parseProfile(fs.readFileSync(path.join(repo, 'plugins/seccomp/profiles/default.json'), 'utf8'));
  const full = compileProfile(profile, { caps: base.process.capabilities.bounding, arch: nativeArch(), kernel: os.release() });
  const arches = full.architectures ?? [];
  const variants = {
    'no filter': undefined,
    [`default, ${arches.length} arches`]: full,
    ...(arches.length > 2 ? { [`default, ${arches.slice(0, 2).join('+')}`]: { ...full, architectures: arches.slice(0, 2) } } : {}),
    [`default, ${arches[0]} only`]: { ...full, architectures: arches.slice(0, 1) },
  };
  const series = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
  const names = Object.keys(variants);
  for (let i = 0; i < N + 2; i++) {
    for (const k of i % 2 ? names : [...names].reverse()) {
      const cfg = JSON.parse(JSON.stringify(base));
      if (variants[k]) cfg.linux.seccomp = variants[k];
      else delete cfg.linux.seccomp;
      fs.writeFileSync(path.join(w, 'config.json'), JSON.stringify(cfg));
      const t0 = process.hrtime.bigint();
      const r = spawnSync('runc', ['--root', root, 'run', `bench-${i}-${names.indexOf(k)}`], { cwd: w });
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (r.status !== 0) throw new Error(`${k}: runc run exited ${r.status}: ${r.stderr}`);
      if (i >= 2) series[k].push(ms);
    }
  }
  console.log(`raw runc run of busybox true, ${N} interleaved runs each, load ${os.loadavg()[0].toFixed(1)} (${full.syscalls?.reduce((n, s) => n + s.names.length, 0)} syscall names in the profile)`);
  for (const k of names) console.log(`  ${k.padEnd(36)} median ${median(series[k]).toFixed(1)} ms, p90 ${quantile(series[k], 0.9).toFixed(1)} ms`);
} finally {
  fs.rmSync(w, { recursive: true, force: true });
}
