/**
 * A CRI plugin on a temp FakeRuntime engine for unit tests without root: pods get fake
 * namespace paths (`/fake/<pod id>/net`, nothing made) and a fake CNI network (10.99.0.2), the
 * socket lives in a temp dir; `disposeCri()` (in afterEach) closes the client, the engine and
 * the dir whatever the test left.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestEngine, type TestEngine, type TestEngineOptions } from '@berth/testing';
import { connectCri, criPlugin, type CriClient, type CriPluginOptions, type PodNetwork } from '../src/index.js';

export interface CriHarness {
  t: TestEngine;
  /** The temp dir of the socket (the test may put its own files there). */
  dir: string;
  rt: CriClient['runtime'];
  /** A new client (after t.restart(): the old one's server is gone). */
  reconnect(): CriClient['runtime'];
}

let current: { t?: TestEngine; client?: CriClient; dir: string } | undefined;

/** A pod network that hands out 10.99.0.2 (or fails the ADD with `fail`). */
export const fakePodNetwork = (fail?: string): PodNetwork => ({
  ready: async () => ({ ok: true }),
  attach: async () => {
    if (fail) throw new Error(fail);
    return '10.99.0.2';
  },
  detach: async () => {},
});

/** `engine`: more of the test engine's options (its runtime, experimental, plugins added after the CRI's). */
export async function startCri(options: CriPluginOptions = {}, dir = mkdtempSync(join(tmpdir(), 'berth-cri-')), engine: TestEngineOptions = {}): Promise<CriHarness> {
  current = { dir };
  const plugin = criPlugin({
    socket: join(dir, 'cri.sock'),
    namespaces: () => ({ create: async (pod) => ({ net: `/fake/${pod.id}/net` }), remove: async () => {}, alive: async () => true }),
    network: () => fakePodNetwork(),
    ...options,
  });
  const t = await createTestEngine({ ...engine, plugins: [plugin, ...(engine.plugins ?? [])] });
  current.t = t;
  const reconnect = () => {
    current!.client?.close();
    current!.client = connectCri(join(dir, 'cri.sock'));
    return current!.client.runtime;
  };
  return { t, dir, rt: reconnect(), reconnect };
}

export async function disposeCri(): Promise<void> {
  if (!current) return;
  const { t, client, dir } = current;
  current = undefined;
  client?.close();
  await t?.dispose();
  rmSync(dir, { recursive: true, force: true });
}
