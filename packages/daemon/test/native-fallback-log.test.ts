/**
 * berthd says why it runs without its native addon — once, at start, as a warning — instead
 * of falling back to the binaries and child_process silently. BERTH_NATIVE=0 is set before
 * anything in this file's module graph asks for the addon (it is looked up once per process).
 */
import { MemoryLogger } from '@berth/core';
import { nativeAddon } from '@berth/native';
import { expect, it } from 'vitest';
import { berthdPerTest, tempDaemonConfig } from './helpers/temp-berthd.js';

process.env.BERTH_NATIVE = '0';

const berthd = berthdPerTest('berth-native-log-');

it('logs why the native addon is not used, once, at start', async () => {
  const logger = new MemoryLogger();
  await berthd.start(tempDaemonConfig(berthd.dir()), { logger });
  expect(nativeAddon()).toBeNull();
  const said = logger.entries.filter((e) => /native addon not used/.test(e.msg));
  expect(said).toHaveLength(1);
  expect(said[0]).toMatchObject({ level: 'warn' });
  expect(said[0].msg).toContain('disabled (BERTH_NATIVE=0)');
});
