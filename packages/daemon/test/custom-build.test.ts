/**
 * An embedded daemon (startBerthd, as berthdMain and custom builds use it) lets its process
 * end: shutdown releases the listener and the runtime backend's watcher. The custom builds of
 * docs/composing.md run word for word in composing-doc.test.ts and the e2e of that name.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startBerthd } from '../src/index.js';
import { berthdPerTest, tempDaemonConfig } from './helpers/temp-berthd.js';

const berthd = berthdPerTest('berth-custom-');

describe('an embedded berthd', () => {
  it('shutdown releases what keeps an embedding process alive: the listener and the runtime backend\'s watcher', async () => {
    const dir = berthd.dir();
    const sock = path.join(dir, 'berth.sock');
    const config = tempDaemonConfig(dir);
    const watchers = () => (process as unknown as { _getActiveHandles(): object[] })._getActiveHandles().filter((h) => h.constructor.name === 'FSWatcher').length;
    await new Promise((r) => setTimeout(r, 20)); // the previous test's handles finish closing
    const before = watchers();
    const d = await startBerthd(config, { handleSignals: false });
    expect(watchers()).toBeGreaterThan(before); // the OCI backend watches its exits dir
    await d.shutdown('test');
    await new Promise((r) => setTimeout(r, 20)); // handles finish closing on a later turn
    expect(watchers()).toBe(before);
    expect(fs.existsSync(sock)).toBe(false);
  });
});
