// Summary of a V8 .cpuprofile (node --cpu-prof): where the sampled time went, by category
// (berth package, dependency, node internals, GC, idle) and by function (self and total).
import fs from 'node:fs';
import { gunzipSync } from 'node:zlib';

function category(url, name) {
  if (name === '(idle)') return 'idle';
  if (name === '(garbage collector)') return 'GC';
  if (name === '(program)') return 'V8/native (program)';
  if (name === '(root)') return 'root';
  const m = /packages\/([^/]+)\/(?:dist|src)\//.exec(url);
  if (m) return `berth: @berth/${m[1]}`;
  const d = /node_modules\/(?:\.pnpm\/)?((?:@[^/]+\/)?[^/@]+)/.exec(url);
  if (d) return `dependency: ${d[1]}`;
  if (url.startsWith('node:') || url === '') return 'node internals / native';
  return 'other';
}

export function summarizeProfile(file, top = 25) {
  const raw = fs.readFileSync(file);
  const prof = JSON.parse((file.endsWith('.gz') ? gunzipSync(raw) : raw).toString('utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const key = (n) => {
    const cf = n.callFrame;
    const short = cf.url.replace(/^file:\/\/.*?\/(packages|node_modules)\//, '$1/');
    return `${cf.functionName || '(anonymous)'} ${short ? `${short}:${cf.lineNumber + 1}` : ''}`.trim();
  };
  const self = new Map();
  const total = new Map();
  const cats = new Map();
  let sum = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    const dt = (prof.timeDeltas[i] ?? 0) / 1000; // µs → ms
    const n = byId.get(prof.samples[i]);
    if (!n) continue;
    sum += dt;
    const k = key(n);
    self.set(k, (self.get(k) ?? 0) + dt);
    const c = category(n.callFrame.url, n.callFrame.functionName);
    cats.set(c, (cats.get(c) ?? 0) + dt);
    const seen = new Set();
    for (let id = n.id; id !== undefined; id = parent.get(id)) {
      const nn = byId.get(id);
      const kk = key(nn);
      if (seen.has(kk)) continue;
      seen.add(kk);
      total.set(kk, (total.get(kk) ?? 0) + dt);
    }
  }
  const idle = cats.get('idle') ?? 0;
  const busy = sum - idle;
  const sortDesc = (m) => [...m].sort((a, b) => b[1] - a[1]);
  const skip = new Set(['(root)', '(idle)', '(program)', '(garbage collector)']);
  return {
    sampledMs: sum,
    busyMs: busy,
    categories: sortDesc(cats).map(([name, t]) => ({ name, ms: t, pctBusy: name === 'idle' ? null : (100 * t) / busy })),
    selfTop: sortDesc(self)
      .filter(([k]) => !skip.has(k.split(' ')[0]))
      .slice(0, top)
      .map(([fn, t]) => ({ fn, ms: t, pctBusy: (100 * t) / busy })),
    totalTopBerth: sortDesc(total)
      .filter(([k]) => k.includes('packages/'))
      .slice(0, top + 15)
      .map(([fn, t]) => ({ fn, ms: t, pctBusy: (100 * t) / busy })),
  };
}

// `node bench/lib/profile.mjs FILE.cpuprofile[.gz]` prints the markdown summary.
if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  process.stdout.write(profileMarkdown(summarizeProfile(process.argv[2])));
}

export function profileMarkdown(s) {
  const lines = [];
  lines.push(`Sampled ${(s.sampledMs / 1000).toFixed(1)} s of berthd wall time, ${(s.busyMs / 1000).toFixed(1)} s on CPU (not idle).`, '');
  lines.push('| where (self time) | ms | % of busy |', '| --- | ---: | ---: |');
  for (const c of s.categories) if (c.name !== 'idle') lines.push(`| ${c.name} | ${c.ms.toFixed(0)} | ${c.pctBusy.toFixed(1)} |`);
  lines.push('', '| top functions by self time | ms | % of busy |', '| --- | ---: | ---: |');
  for (const f of s.selfTop) lines.push(`| \`${f.fn}\` | ${f.ms.toFixed(0)} | ${f.pctBusy.toFixed(1)} |`);
  lines.push('', '| berth functions by total (inclusive) time | ms | % of busy |', '| --- | ---: | ---: |');
  for (const f of s.totalTopBerth) lines.push(`| \`${f.fn}\` | ${f.ms.toFixed(0)} | ${f.pctBusy.toFixed(1)} |`);
  return lines.join('\n') + '\n';
}
