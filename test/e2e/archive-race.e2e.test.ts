/**
 * The docker cp symlink-swap race (the CVE-2018-15664 class) against a real berthd with runc:
 * a running container keeps swapping a directory of its own for a symlink to a host directory
 * while the test loops archive requests on a path through it. A PUT must never write on the
 * host and a GET must never return the host-only file, whichever way each try falls. Runs for
 * the native addon's openat2 path and for the fallback without it (BERTH_NATIVE=0). Bounded
 * in time (at least TRIES tries, more until one try reached the container's own directory, so
 * the check that the race was really run does not hang on one unlucky schedule); the assertion
 * is on what reached the host, never on timing.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, berthdSkipReason, removeTestImageTarball, startBerthd, type Berthd } from './helpers/berthd.js';

const skip = berthdSkipReason();
const TRIES = 250;
const BUDGET_MS = 20_000;
const SECRET = 'HOST-ONLY-SECRET-b6f1';

function request(socketPath: string, method: string, urlPath: string, body?: Buffer): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method, path: urlPath, headers: body ? { 'Content-Type': 'application/x-tar', 'Content-Length': body.length } : {} }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe.skipIf(skip).each([
  { mode: 'native addon (openat2)', env: {} as Record<string, string> },
  { mode: 'fallback without the addon (BERTH_NATIVE=0)', env: { BERTH_NATIVE: '0' } },
])(`docker cp symlink-swap race: $mode${skip ? ` (skipped: ${skip})` : ''}`, ({ env }) => {
  let d: Berthd;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-cp-race-'));
  const hostDir = path.join(tmp, 'host');
  let tarBody: Buffer;

  beforeAll(async () => {
    fs.mkdirSync(hostDir);
    fs.writeFileSync(path.join(hostDir, 'secret'), SECRET);
    const src = path.join(tmp, 'src');
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'pwned'), 'written by docker cp\n');
    tarBody = execFileSync('tar', ['-C', src, '-cf', '-', 'pwned']);
    d = await startBerthd({ env });
    await d.loadTestImage();
  }, 120_000);
  afterAll(async () => {
    await d?.docker(['rm', '-f', 'swapw', 'swapr']).catch(() => {});
    await d?.cleanup();
    removeTestImageTarball();
    fs.rmSync(tmp, { recursive: true, force: true });
  }, 120_000);

  /** Run a container whose shell loop swaps `dir` between a directory (made by `fill`) and a symlink to the host dir. */
  const runSwapper = async (name: string, dir: string, fill: string) => {
    const script = `mkdir -p ${path.posix.dirname(dir)}; while :; do rm -rf ${dir}; mkdir ${dir}; ${fill} rm -rf ${dir}; ln -s ${hostDir} ${dir}; done`;
    const r = await d.docker(['run', '-d', '--name', name, '--network', 'none', TEST_IMAGE, 'sh', '-c', script]);
    expect(r.code, r.stderr).toBe(0);
  };

  it('PUT through a swapping /w/d never writes on the host', async () => {
    await runSwapper('swapw', '/w/d', '');
    let ok = 0;
    const end = Date.now() + BUDGET_MS;
    // at least TRIES tries, and on (within the budget) until one reached the container's own dir
    for (let i = 0; (i < TRIES || ok === 0) && Date.now() < end; i++) {
      const r = await request(d.socket, 'PUT', '/containers/swapw/archive?path=/w/d', tarBody);
      if (r.status === 200) ok++;
      expect(fs.readdirSync(hostDir).sort(), `try ${i}: the host dir was written`).toEqual(['secret']);
    }
    // the loop did reach the container's own directory (the race was really run)
    expect(ok).toBeGreaterThan(0);
  }, 60_000);

  it('GET through a swapping /r/d never returns the host-only file', async () => {
    await runSwapper('swapr', '/r/d', 'echo inside > /r/d/secret;');
    let inside = 0;
    const end = Date.now() + BUDGET_MS;
    // at least TRIES tries, and on (within the budget) until one read the container's own file
    for (let i = 0; (i < TRIES || inside === 0) && Date.now() < end; i++) {
      const r = await request(d.socket, 'GET', '/containers/swapr/archive?path=/r/d/secret');
      expect(r.body.includes(SECRET), `try ${i}: the host-only file was returned`).toBe(false);
      if (r.status === 200 && r.body.includes('inside\n')) inside++;
    }
    expect(inside).toBeGreaterThan(0);
  }, 60_000);
});
