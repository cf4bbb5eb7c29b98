#!/usr/bin/env node
// The synchronous part of child_process.spawn('/bin/true') — the time the event loop is
// blocked per child — in a Node process grown to about MB megabytes of live heap.
//   node bench/spawn-cost.mjs [MB=0] [N=30]
import { spawn } from 'node:child_process';
import { quantile } from './lib/stats.mjs';

const mb = Number(process.argv[2] ?? 0);
const n = Number(process.argv[3] ?? 30);
const keep = [];
// Small objects, as a daemon's heap is (many records, strings), not one big buffer.
for (let i = 0; i < mb * 8000; i++) keep.push({ id: i, name: `container-${i}`, labels: { a: String(i) } });
const xs = [];
for (let i = 0; i < n + 3; i++) {
  const t = process.hrtime.bigint();
  const p = spawn('/bin/true', [], { stdio: 'ignore' });
  const dt = Number(process.hrtime.bigint() - t) / 1e6;
  if (i >= 3) xs.push(dt);
  await new Promise((r) => p.on('close', r));
}
const rss = (process.memoryUsage().rss / 2 ** 20).toFixed(0);
console.log(`RSS ${rss} MiB (${keep.length} objects): spawn() blocks the event loop median ${quantile(xs, 0.5).toFixed(2)} ms, p90 ${quantile(xs, 0.9).toFixed(2)} ms (n=${n})`);
