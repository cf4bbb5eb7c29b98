/**
 * Orphans after a crash, with real runc and conmon: containers the OCI backend holds (bundle,
 * conmon monitor, runc state) but the engine's store has no record of — a daemon killed
 * between the backend's create and the store's write — are force-deleted when an Engine
 * starts on the same roots; containers the store knows keep running.
 */
import 'reflect-metadata';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Engine, MemoryLogger, silentLogger } from '@berth/core';
import { OciRuntimeBackend } from '@berth/runtime-oci';
import { backendPlugin } from '@berth/testing';
import { busyboxSpec, forceCleanup, newId, processesMentioning, removeTestRootfs, runtimeSkipReason, testRootfs } from './runtime-helpers.js';

const skip = runtimeSkipReason();
if (skip) console.warn(`runtime-orphans e2e skipped: ${skip}`);

async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.skipIf(skip !== null)(`orphaned OCI containers at engine start${skip ? ` (skipped: ${skip})` : ''}`, () => {
  const tmp = skip ? '' : fs.mkdtempSync(path.join(os.tmpdir(), 'berth-orphans-'));
  const ids: string[] = [];
  afterAll(() => {
    if (tmp) forceCleanup(path.join(tmp, 'exec/oci/state/runc'), ids, [tmp]);
    removeTestRootfs();
  });

  it('deletes the monitor, runc state and bundle of containers the store does not know; known ones keep running', async () => {
    const dataRoot = path.join(tmp, 'data');
    const execRoot = path.join(tmp, 'exec');
    const rootfs = testRootfs();
    const newBackend = () => new OciRuntimeBackend({ execRoot, runtimes: { runc: { path: 'runc' } }, defaultRuntime: 'runc', logger: silentLogger });
    const backends: OciRuntimeBackend[] = [];
    const engines: Engine[] = [];
    try {
      // A first "daemon": one container it knows, running.
      const b1 = newBackend();
      backends.push(b1);
      const e1 = await Engine.create({ dataRoot, execRoot, plugins: [backendPlugin(b1)], defaultRuntime: 'runc', liveRestore: true, logger: new MemoryLogger() });
      engines.push(e1);
      const { Id: known } = await e1.containers.create({ name: 'known', Config: { Cmd: ['/bin/sh', '-c', 'while true; do sleep 0.05; done'] }, HostConfig: { NetworkMode: 'none' }, rootfs });
      ids.push(known);
      await e1.containers.start(known);

      // Containers created in the backend with no record in the store: one running, one only created.
      const orphanRunning = newId();
      const orphanCreated = newId();
      ids.push(orphanRunning, orphanCreated);
      const create = (id: string) =>
        b1.create({
          id,
          spec: busyboxSpec(rootfs, id, ['/bin/sh', '-c', 'while true; do sleep 0.05; done']),
          runtime: 'runc',
          runtimeArgs: [],
          rootUid: 0,
          rootGid: 0,
          stdio: { tty: false, openStdin: false, stdinOnce: false },
          log: { path: path.join(tmp, `${id}.log`) },
        });
      await create(orphanRunning);
      await b1.start(orphanRunning);
      await create(orphanCreated);
      expect(await b1.list()).toEqual([known, orphanRunning, orphanCreated].sort());
      expect(processesMentioning(`-c ${orphanRunning}`)).not.toEqual([]);
      expect(processesMentioning(`-c ${orphanCreated}`)).not.toEqual([]);
      // The daemon goes away; its containers keep running.
      await e1.close();
      await b1.close();

      // The next daemon on the same roots.
      const logger = new MemoryLogger();
      const b2 = newBackend();
      backends.push(b2);
      const e2 = await Engine.create({ dataRoot, execRoot, plugins: [backendPlugin(b2)], defaultRuntime: 'runc', liveRestore: true, logger });
      engines.push(e2);

      expect(await b2.list()).toEqual([known]);
      for (const id of [orphanRunning, orphanCreated]) {
        expect(fs.existsSync(path.join(execRoot, 'oci', id))).toBe(false);
        expect(fs.existsSync(path.join(execRoot, 'oci/state/runc', id))).toBe(false);
        await until(`the processes of ${id} to end`, () => processesMentioning(id).length === 0);
        expect(logger.entries.filter((e) => e.fields?.container === id).map((e) => [e.level, e.msg])).toEqual([
          ['warn', 'removing orphaned container unknown to the state store'],
        ]);
      }
      const rec = e2.containers.get(known);
      expect(rec.State.Status).toBe('running');
      expect(processesMentioning(`-c ${known}`)).not.toEqual([]);
      expect(fs.existsSync(path.join(execRoot, 'oci', known))).toBe(true);
      await e2.containers.remove(known, { force: true });
      expect(await b2.list()).toEqual([]);
    } finally {
      for (const e of engines) await e.close().catch(() => undefined);
      for (const b of backends) await b.close().catch(() => undefined);
    }
  }, 120_000);
});
