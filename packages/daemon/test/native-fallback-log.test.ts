/**
 * berthd says why it runs without its native addon — once, at start, as a warning — instead
 * of falling back to the binaries and child_process silently. BERTH_NATIVE=0 is set before
 * anything in this file's module graph asks for the addon (it is looked up once per process).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MemoryLogger } from '@berth/core';
import { nativeAddon } from '@berth/native';
import { afterEach, expect, it } from 'vitest';
import { startBerthd, type RunningDaemon } from '../src/index.js';
import { tempDaemonConfig } from './helpers/temp-berthd.js';

process.env.BERTH_NATIVE = '0';

let daemon: RunningDaemon | undefined;
let dir: string | undefined;
afterEach(async () => {
  await daemon?.shutdown('test');
  daemon = undefined;
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

it('logs why the native addon is not used, once, at start', async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-native-log-'));
  const logger = new MemoryLogger();
  daemon = await startBerthd(tempDaemonConfig(dir), { handleSignals: false, logger });
  expect(nativeAddon()).toBeNull();
  const said = logger.entries.filter((e) => /native addon not used/.test(e.msg));
  expect(said).toHaveLength(1);
  expect(said[0]).toMatchObject({ level: 'warn' });
  expect(said[0].msg).toContain('disabled (BERTH_NATIVE=0)');
});
