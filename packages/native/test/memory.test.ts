/**
 * The addon's mallocTrim (native/memory.c): malloc memory freed in the middle of a heap (which
 * free() cannot give back by itself) is handed back to the kernel — the process's RSS falls and
 * the call says it released something.
 */
import { readFileSync } from 'node:fs';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { nativeAddon } from '../src/index.js';
import { noAddon } from './build-skip.js';

const MiB = 2 ** 20;
const rss = () => Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]) * 1024;

describe.skipIf(noAddon !== null)(`native mallocTrim${noAddon ? ` (skipped: ${noAddon})` : ''}`, () => {
  it('gives the free memory inside malloc heaps back to the kernel', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    // 48 MiB of 64 KiB buffers (below malloc's mmap threshold: they come from the heap), every
    // other one kept, so the freed ones are holes that free() cannot trim
    let bufs: Buffer[] | null = Array.from({ length: 768 }, () => Buffer.allocUnsafeSlow(64 * 1024).fill(1));
    const kept = bufs.filter((_, i) => i % 2 === 1);
    bufs = null;
    gc();
    await new Promise((r) => setTimeout(r, 200)); // V8 frees array buffers' memory on a background sweep
    gc();
    const before = rss();
    expect(nativeAddon()!.mallocTrim()).toBe(true);
    expect(before - rss()).toBeGreaterThan(8 * MiB);
    expect(kept.every((b) => b[0] === 1 && b[64 * 1024 - 1] === 1)).toBe(true);
  });
});
