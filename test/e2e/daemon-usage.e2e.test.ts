/**
 * The numbers clients read, through the real docker CLI against a real berthd:
 * - `docker logs` of a ~150 MB json-file (two files, rotated) by four readers at once keeps
 *   berthd's RSS bounded (issue 10 item 8: 65 MB → 453 MB for one reader, 2 GB for four);
 * - `docker system df` (-v, --format) lists the image, the containers and their sizes;
 * - `docker container prune` reports the bytes of the removed writable layers;
 * - `--network none`: `docker inspect` shows MacAddress "" (the key present), stats have no
 *   networks field and `docker stats` shows 0B / 0B.
 */
import fs from 'node:fs';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, berthdSkipReason, bytesOf, removeTestImageTarball, startBerthd, type Berthd } from './helpers/berthd.js';

const skip = berthdSkipReason();

function rssOf(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** GET a streamed body over the socket and count its bytes without keeping them. */
function drainGet(socket: string, path: string): Promise<{ status: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath: socket, path }, (res) => {
      let bytes = 0;
      res.on('data', (d: Buffer) => (bytes += d.length));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

describe.skipIf(skip)(`usage numbers and bounded log reading through the docker CLI${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let d: Berthd;
  const ok = async (args: string[]) => {
    const r = await d.docker(args);
    expect(r.code, `docker ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout.trim();
  };

  beforeAll(async () => {
    d = await startBerthd();
    await d.loadTestImage();
  }, 120_000);
  afterAll(async () => {
    await d?.docker(['rm', '-f', 'biglog', 'writer', 'idle', 'running']).catch(() => {});
    await d?.cleanup();
    removeTestImageTarball();
  }, 120_000);

  it('four concurrent `docker logs` of a 150 MB log keep berthd far below the log size', async () => {
    await ok(['run', '--name', 'biglog', '--network', 'none', TEST_IMAGE, 'true']);
    const logPath = await ok(['inspect', '--format', '{{.LogPath}}', 'biglog']);
    expect(logPath).not.toBe('');
    // The container has exited (its log is complete); write the history as json-file lines:
    // the rotated file and the current one, 75 MB each.
    const pad = 'x'.repeat(90);
    let n = 0;
    for (const file of [`${logPath}.1`, logPath]) {
      const fd = fs.openSync(file, 'w');
      for (let size = 0; size < 75 * 1024 * 1024; ) {
        const batch: string[] = [];
        for (let i = 0; i < 10_000; i++, n++) batch.push(`{"log":"${n} ${pad}\\n","stream":"stdout","time":"2026-01-01T00:00:00.${String(n).padStart(9, '0')}Z"}\n`);
        const buf = Buffer.from(batch.join(''));
        fs.writeSync(fd, buf);
        size += buf.length;
      }
      fs.closeSync(fd);
    }
    const pid = d.process.pid!;
    const base = rssOf(pid);
    let peak = base;
    const sampler = setInterval(() => (peak = Math.max(peak, rssOf(pid))), 20);
    try {
      const readers = [
        ...Array.from({ length: 3 }, () => drainGet(d.socket, '/v1.44/containers/biglog/logs?stdout=1&stderr=1')),
        drainGet(d.socket, `/v1.44/containers/biglog/logs?stdout=1&tail=${Math.floor(n / 2)}`),
      ];
      const results = await Promise.all(readers);
      for (const r of results) expect(r.status).toBe(200);
      // Each entry: an 8-byte frame header and "<n> <pad>\n".
      const payload = (from: number) => {
        let b = 0;
        for (let i = from; i < n; i++) b += 8 + String(i).length + 1 + pad.length + 1;
        return b;
      };
      expect(results[0].bytes).toBe(payload(0));
      expect(results[3].bytes).toBe(payload(n - Math.floor(n / 2)));
    } finally {
      clearInterval(sampler);
    }
    peak = Math.max(peak, rssOf(pid));
    expect(peak - base, `berthd RSS went from ${base} to ${peak} bytes`).toBeLessThan(128 * 1024 * 1024);
    // The CLI reads it too (one reader, the last lines).
    const last = await ok(['logs', '--tail', '2', 'biglog']);
    expect(last.split('\n').map((l) => l.split(' ')[0])).toEqual([String(n - 2), String(n - 1)]);
  }, 600_000);

  it('docker system df and container prune report the writable layers', async () => {
    await ok(['run', '--name', 'writer', '--network', 'none', TEST_IMAGE, 'sh', '-c', 'head -c 300000 /dev/urandom > /blob']);
    await ok(['create', '--name', 'idle', '--network', 'none', TEST_IMAGE, 'true']);
    await ok(['run', '-d', '--name', 'running', '--network', 'none', TEST_IMAGE, 'sleep', '300']);

    const rows = (await ok(['system', 'df', '--format', '{{json .}}'])).split('\n').map((l) => JSON.parse(l) as Record<string, string>);
    const byType = new Map(rows.map((r) => [r.Type, r]));
    expect([...byType.keys()]).toEqual(['Images', 'Containers', 'Local Volumes', 'Build Cache']);
    expect(byType.get('Images')).toMatchObject({ TotalCount: '1', Active: '1' });
    // biglog, writer, idle, running — one active.
    expect(byType.get('Containers')).toMatchObject({ TotalCount: '4', Active: '1' });
    expect(bytesOf(byType.get('Containers')!.Size)).toBeGreaterThanOrEqual(300_000);
    expect(bytesOf(byType.get('Images')!.Size)).toBeGreaterThan(0);

    const verbose = await ok(['system', 'df', '-v']);
    expect(verbose).toContain('Images space usage:');
    expect(verbose).toMatch(/Containers space usage:[\s\S]*writer/);
    expect(verbose).toContain(TEST_IMAGE);

    const pruned = await ok(['container', 'prune', '-f']);
    const reclaimed = /Total reclaimed space: (.+)$/m.exec(pruned);
    expect(reclaimed, pruned).not.toBeNull();
    expect(bytesOf(reclaimed![1]!)).toBeGreaterThanOrEqual(300_000);
    expect(bytesOf(reclaimed![1]!)).toBeLessThan(300_000 + 256 * 1024);
    expect(await ok(['ps', '-a', '--format', '{{.Names}}'])).toBe('running');
  }, 120_000);

  it('--network none: MacAddress "" in inspect, no networks in stats, 0B / 0B in docker stats', async () => {
    expect(await ok(['inspect', '--format', '{{json .NetworkSettings.MacAddress}}|{{json .NetworkSettings.Networks.none.MacAddress}}', 'running'])).toBe('""|""');
    const s = await d.api('GET', '/v1.44/containers/running/stats?stream=0&one-shot=1');
    expect(s.status).toBe(200);
    expect(JSON.parse(s.body)).not.toHaveProperty('networks');
    expect(await ok(['stats', '--no-stream', '--format', '{{.NetIO}}', 'running'])).toBe('0B / 0B');
  }, 60_000);
});
