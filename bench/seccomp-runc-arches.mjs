#!/usr/bin/env node
// What runc itself pays for a seccomp filter, by architecture list and by the filter's shape:
// raw `runc run` of a busybox `true` bundle (no engine), interleaved, with no filter, with
// Docker's default profile as the seccomp plugin compiles it for this host (its arch list
// follows the kernel's syscall ABIs: @berth/native syscallAbis()), with dockerd's list
// (x86_64 + x86 + x32 on amd64), for the native arch alone, and two shapes of berth's filter:
// one rule per syscall name instead of the profile's grouped rules (the same allow/deny), and
// without the conditional (args) rules (NOT the same semantics: only what those rules cost).
// The differences between the series are runc 1.1/libseccomp building the filter in
// `runc init` — the cost a default start pays on top of an unconfined one.
// Root; berth built (the plugin's and the addon's dist). Run it under the bench lock:
//   flock /tmp/<lock> node bench/seccomp-runc-arches.mjs [N=20]
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
const { nativeAddon } = await import(path.join(repo, 'packages/native/dist/index.js'));
const N = Number(process.argv[2] ?? 20);
const w = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-seccomp-runc-'));
const root = path.join(w, 'runc-root');
const load0 = os.loadavg()[0];
try {
  execFileSync('bash', [path.join(repo, 'scripts/build-test-rootfs.sh'), path.join(w, 'rootfs')], { stdio: 'ignore' });
  execFileSync('runc', ['spec'], { cwd: w });
  const base = JSON.parse(fs.readFileSync(path.join(w, 'config.json'), 'utf8'));
  base.process.terminal = false;
  base.process.args = ['/bin/true'];
  const profile = parseProfile(fs.readFileSync(path.join(repo, 'plugins/seccomp/profiles/default.json'), 'utf8'));
  const target = { caps: base.process.capabilities.bounding, arch: nativeArch(), kernel: os.release() };
  const abis = nativeAddon()?.syscallAbis() ?? { x32: null, ia32: null };
  const dockerd = compileProfile(profile, target);
  const berth = compileProfile(profile, { ...target, abis });
  const arches = dockerd.architectures ?? [];
  const variants = {
    'no filter': undefined,
    [`dockerd's list: ${arches.join('+')}`]: dockerd,
    [`berth, this host: ${berth.architectures.join('+')}`]: berth,
    [`${arches[0]} only`]: { ...dockerd, architectures: arches.slice(0, 1) },
    'berth, one rule per name': { ...berth, syscalls: berth.syscalls.flatMap((r) => r.names.map((n) => ({ ...r, names: [n] }))) },
    'berth, no args rules (not equivalent)': { ...berth, syscalls: berth.syscalls.filter((r) => !r.args) },
  };
  const names = Object.keys(variants);
  const series = Object.fromEntries(names.map((k) => [k, []]));
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
  const rules = (s) => `${s.syscalls.length} rules, ${s.syscalls.reduce((n, r) => n + r.names.length, 0)} names`;
  console.log(`raw runc run of busybox true, ${N} interleaved runs each; 1-min load ${load0.toFixed(1)} at start, ${os.loadavg()[0].toFixed(1)} at end`);
  console.log(`syscallAbis ${JSON.stringify(abis)}; berth's filter: ${rules(berth)}`);
  for (const k of names) console.log(`  ${k.padEnd(40)} median ${median(series[k]).toFixed(1)} ms, p90 ${quantile(series[k], 0.9).toFixed(1)} ms`);
} finally {
  fs.rmSync(w, { recursive: true, force: true });
}
