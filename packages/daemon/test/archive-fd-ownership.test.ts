/**
 * Every fd the archive code opens is closed exactly once, also when the client hangs up in the
 * middle of a file: a second close would, under load, close whatever the number was reused for
 * (seen: another client's socket, whose response then read as "Parse Error: Expected HTTP/").
 */
import './helpers/close-guard.js';
import { afterEach, beforeEach, expect, it } from 'vitest';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { buildApp, openInjector, apiRoutes, type Injector } from '../src/index.js';
import { badCloseList, resetBadCloses } from './helpers/close-guard.js';
import { fakePort, record } from './helpers/fake-port.js';

let dir: string;
let inj: Injector;
beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-archive-fds-'));
  const root = path.join(dir, 'rootfs');
  fs.mkdirSync(path.join(root, 'data'), { recursive: true });
  fs.writeFileSync(path.join(root, 'data', 'big.bin'), Buffer.alloc(8 * 1024 * 1024, 7));
  inj = await openInjector(buildApp({ routes: apiRoutes(fakePort([record('f'.repeat(64), 'box', 'running', { BaseFS: root })])) }));
  resetBadCloses();
});
afterEach(async () => {
  await inj.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** GET `url`, read one chunk, stop reading and hang up; resolves when the request is gone. */
function hangUpMidFile(url: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no response')), 10_000);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    const req = http.request({ socketPath: inj.socketPath, path: url }, (res) => {
      res.once('data', () => {
        res.pause();
        setTimeout(() => req.destroy(), 20);
      });
    });
    req.on('error', () => undefined);
    req.on('close', done);
    req.end();
  });
}

it('a client hanging up mid-file: no fd of the archive or export is closed twice', async () => {
  for (const url of ['/containers/box/archive?path=/data', '/containers/box/export', '/containers/box/archive?path=/data/big.bin']) {
    await hangUpMidFile(url);
  }
  // the server notices the hang-ups asynchronously: then a complete GET, which ends after them
  const r = await inj.request({ url: '/containers/box/archive?path=/data/big.bin' });
  expect(r.statusCode).toBe(200);
  await new Promise((res) => setTimeout(res, 200));
  expect(badCloseList().map((b) => `fd ${b.fd}: ${b.stack}`)).toEqual([]);
});
