#!/usr/bin/env node
// Issue-16 benchmark: `docker build` (classic builder, DOCKER_BUILDKIT=0) of the same Dockerfile
// and context on berthd and on Debian's dockerd 20.10 (own containerd), side by side. One
// uncached build on each (timed, for the record), then N rebuilds with everything cached,
// interleaved (each round rotates who goes first). The target of issue 16: berth's cached
// rebuild ≤ 0.5× dockerd's. Needs root, dockerd, containerd, runc, conmon. Removes its work
// dir, also on failure.
//
//   node bench/build.mjs [--runs N] [--files N] [--out FILE.json]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DOCKER, dockerEnv, timed } from './lib/cli.mjs';
import { Berth, Reference, unmountBelow } from './lib/engines.mjs';
import { benchSetup, startWithTestImage } from './lib/setup.mjs';
import { median, quantile } from './lib/stats.mjs';

const { repo, opt, log, work, cliDir, loads, loadNow } = benchSetup('build', '/tmp/bbd-');
const RUNS = Number(opt('--runs', 9));
const FILES = Number(opt('--files', 200));
const IMAGE = 'berth-test/busybox';

// the context: a multi-stage Dockerfile with RUN, COPY (FILES small files), ADD, metadata steps
const ctx = path.join(work, 'ctx');
fs.mkdirSync(path.join(ctx, 'src'), { recursive: true });
for (let i = 0; i < FILES; i++) fs.writeFileSync(path.join(ctx, 'src', `f${i}.txt`), `file ${i}\n`.repeat(20));
fs.writeFileSync(
  path.join(ctx, 'Dockerfile'),
  `FROM ${IMAGE} AS build
WORKDIR /build
COPY src/ ./src/
RUN cat src/*.txt | wc -l > lines.txt
RUN mkdir -p /out && cp lines.txt /out/

FROM ${IMAGE}
LABEL bench=build
ENV APP=/app MODE=bench
WORKDIR /app
COPY --from=build /out/lines.txt ./
COPY src/f1.txt src/f2.txt ./
RUN echo ready > ready.txt
USER 1000:1000
EXPOSE 8080
HEALTHCHECK --interval=30s CMD test -f /app/ready.txt
CMD ["cat", "/app/lines.txt"]
`,
);

const ref = new Reference(work);
const berth = new Berth(work, repo, { daemonJson: { bridge: 'none' } });
const engines = [berth, ref];
const envOf = (e) => ({ ...dockerEnv(e.sock, cliDir), DOCKER_BUILDKIT: '0' });
const build = (e, extra = []) => timed(DOCKER, ['build', '--network', 'none', '-t', 'bench-build', ...extra, ctx], { env: envOf(e), capture: true, timeoutMs: 600_000 });
const R = { date: new Date().toISOString(), runs: RUNS, files: FILES, machine: `${os.cpus().length} CPUs, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, Linux ${os.release()}`, uncached: {}, cached: {}, loads };

try {
  log(`work dir ${work}; load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  await startWithTestImage(engines, { work, log, envOf });
  for (const e of engines) {
    log(`uncached build on ${e.name} (load ${loadNow()})`);
    R.uncached[e.name] = (await build(e)).ms;
  }
  const samples = { berth: [], dockerd: [] };
  for (let i = 0; i < RUNS; i++) {
    for (const e of i % 2 ? [ref, berth] : [berth, ref]) {
      const r = await build(e);
      if (/Running in/.test(r.stdout)) throw new Error(`${e.name}: a rebuild ran a step instead of taking it from the cache:\n${r.stdout}`);
      samples[e.name].push(r.ms);
    }
  }
  for (const n of ['berth', 'dockerd']) R.cached[n] = { median: median(samples[n]), p90: quantile(samples[n], 0.9), samples: samples[n] };
  R.ratio = R.cached.berth.median / R.cached.dockerd.median;
  log(`cached rebuild: berth ${R.cached.berth.median.toFixed(0)} ms, dockerd ${R.cached.dockerd.median.toFixed(0)} ms, ratio ${R.ratio.toFixed(2)} (load ${loadNow()})`);
  log(`uncached build: berth ${R.uncached.berth.toFixed(0)} ms, dockerd ${R.uncached.dockerd.toFixed(0)} ms`);
  console.log(JSON.stringify(R, null, 1));
  const out = opt('--out', null);
  if (out) fs.writeFileSync(out, `${JSON.stringify(R, null, 1)}\n`);
} finally {
  for (const e of engines) await e.stop(log).catch((err) => log(`stop ${e.name}: ${err.message}`));
  unmountBelow(work, log);
  fs.rmSync(work, { recursive: true, force: true });
}
