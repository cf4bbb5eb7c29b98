/**
 * Loading the addon: a missing or broken addon is never swallowed silently — the status says
 * why berth falls back (the daemon logs it once at start), with the loader's error.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadNativeAddon, nativeAddon, nativeAddonStatus } from '../src/index.js';
import { noAddon } from './build-skip.js';


describe('loading the native addon', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'berth-native-load-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('a missing addon: null, and the fallback names the file and the build step', () => {
    const file = path.join(dir, 'berth.node');
    const st = loadNativeAddon(file);
    expect(st.addon).toBeNull();
    expect(st.fallback).toContain(file);
    expect(st.fallback).toMatch(/not built/);
    expect((st.error as NodeJS.ErrnoException).code).toBe('MODULE_NOT_FOUND');
  });

  it('a file that is not a loadable addon: null, with the loader error in the fallback', async () => {
    const file = path.join(dir, 'berth.node');
    await writeFile(file, 'not an ELF object');
    const st = loadNativeAddon(file);
    expect(st.addon).toBeNull();
    expect(st.error).toBeInstanceOf(Error);
    expect(st.fallback).toContain(`cannot load ${file}`);
    expect(st.fallback).toContain(st.error!.message);
  });

  it('BERTH_NATIVE=0 disables it, and says so', () => {
    expect(loadNativeAddon(undefined, { BERTH_NATIVE: '0' })).toEqual({ addon: null, fallback: 'disabled (BERTH_NATIVE=0)' });
  });

  it.skipIf(noAddon !== null)(`the built addon loads: no fallback, and nativeAddon() is that addon${noAddon ? ` (skipped: ${noAddon})` : ''}`, () => {
    const st = nativeAddonStatus();
    expect(st.fallback).toBeNull();
    expect(st.error).toBeUndefined();
    expect(nativeAddon()).toBe(st.addon);
  });
});
