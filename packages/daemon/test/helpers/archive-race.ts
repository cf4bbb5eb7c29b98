/**
 * The symlink-swap race at the API level, without root or runc (the e2e archive-race test does
 * it with a real container): a shell loop swaps a directory of a temp root for a symlink to a
 * host dir while PUT and GET requests loop on a path through it. Nothing may be written in the
 * host dir and no response may carry its file. Bounded in tries and time; shared by
 * archive-input.test.ts (openat2) and archive-input-fallback.test.ts (/proc/self/fd).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildApp, openInjector, apiRoutes, type Injector } from '../../src/index.js';
import { fakePort, record } from './fake-port.js';
import { makeTar } from './archive-table.js';

const TRIES = 300;
const BUDGET_MS = 15_000;
const SECRET = 'HOST-ONLY-5d21';

export function archiveRace(title: string): void {
  describe(title, () => {
    let dir: string;
    let root: string;
    let host: string;
    let inj: Injector;
    let swapper: ChildProcess | null = null;
    beforeEach(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-archive-race-'));
      root = path.join(dir, 'rootfs');
      host = path.join(dir, 'host');
      fs.mkdirSync(path.join(root, 'w'), { recursive: true });
      fs.mkdirSync(host);
      fs.writeFileSync(path.join(host, 'secret'), SECRET);
      inj = await openInjector(buildApp({ routes: apiRoutes(fakePort([record('f'.repeat(64), 'box', 'running', { BaseFS: root })])) }));
    });
    afterEach(async () => {
      if (swapper && swapper.exitCode === null && swapper.signalCode === null) {
        const gone = new Promise((r) => swapper!.once('exit', r));
        swapper.kill('SIGKILL');
        await gone;
      }
      swapper = null;
      await inj.close();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    /**
     * Swap <root>/w/d between a directory (holding `secret` when `withFile`) and a symlink to the
     * host dir, until killed: renames in a child process, each state held ~0.5 ms.
     */
    const swap = (withFile: boolean) => {
      const w = path.join(root, 'w');
      fs.mkdirSync(path.join(w, 'dd'));
      if (withFile) fs.writeFileSync(path.join(w, 'dd', 'secret'), 'inside\n');
      fs.symlinkSync(host, path.join(w, 'll'));
      const script = `
        const fs = require('node:fs');
        const [d, dd, ll] = ['d', 'dd', 'll'].map((n) => ${JSON.stringify(w)} + '/' + n);
        const hold = () => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 0.5);
        for (;;) {
          fs.renameSync(dd, d); hold(); fs.renameSync(d, dd);
          fs.renameSync(ll, d); hold(); fs.renameSync(d, ll);
        }`;
      swapper = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
    };

    it('PUT through a swapping directory never writes in the host dir', async () => {
      swap(false);
      const body = await makeTar([{ name: 'pwned', body: 'bad' }]);
      let ok = 0;
      const end = Date.now() + BUDGET_MS;
      for (let i = 0; i < TRIES && Date.now() < end; i++) {
        const r = await inj.request({ method: 'PUT', url: '/containers/box/archive?path=/w/d', body });
        if (r.statusCode === 200) ok++;
        expect(fs.readdirSync(host), `try ${i}`).toEqual(['secret']);
      }
      expect(ok).toBeGreaterThan(0);
    }, 30_000);

    it('GET through a swapping directory never returns the host file', async () => {
      swap(true);
      let inside = 0;
      const end = Date.now() + BUDGET_MS;
      for (let i = 0; i < TRIES && Date.now() < end; i++) {
        const r = await inj.request({ url: '/containers/box/archive?path=/w/d/secret' });
        expect(r.body.includes(SECRET), `try ${i}`).toBe(false);
        if (r.statusCode === 200 && r.body.includes('inside\n')) inside++;
      }
      expect(inside).toBeGreaterThan(0);
    }, 30_000);
  });
}
