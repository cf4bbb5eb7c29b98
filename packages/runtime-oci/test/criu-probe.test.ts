/**
 * The CRIU probe must not block the daemon: `criu check` can take seconds, and while it runs
 * every timer and request of the event loop must go on. A fake `criu` on PATH waits until a
 * timer of this test has run; a synchronous probe would never let that timer run.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OciRuntimeBackend } from '../src/backend.js';

let dir: string;
let savedPath: string | undefined;
let backend: OciRuntimeBackend | undefined;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-criu-'));
  savedPath = process.env.PATH;
});

afterEach(async () => {
  await backend?.close();
  backend = undefined;
  process.env.PATH = savedPath;
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A `criu` that logs `started`, then waits for `<dir>/release` (up to ~8 s, under the probe's 10 s limit). */
function fakeCriu(exitCode: number): void {
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  const log = path.join(dir, 'criu.log');
  fs.writeFileSync(
    path.join(bin, 'criu'),
    `#!/bin/sh
[ "$1" = check ] || exit 2
echo started >> '${log}'
i=0
while [ ! -e '${path.join(dir, 'release')}' ]; do
  i=$((i+1)); if [ $i -gt 400 ]; then echo 'gave up' >> '${log}'; exit 1; fi
  sleep 0.02
done
echo released >> '${log}'
exit ${exitCode}
`,
    { mode: 0o755 },
  );
  process.env.PATH = `${bin}:${savedPath ?? ''}`;
}

function criuLog(): string[] {
  try {
    return fs.readFileSync(path.join(dir, 'criu.log'), 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

/** Resolves once `test` is true, checked on a timer (the event loop must be free for that). */
function onTimer(test: () => boolean, then: () => void = () => {}): Promise<void> {
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      if (!test()) return;
      clearInterval(timer);
      then();
      resolve();
    }, 5);
  });
}

function makeBackend(): OciRuntimeBackend {
  return new OciRuntimeBackend({ execRoot: path.join(dir, 'exec'), runtimes: { runc: { path: '/bin/true' } }, defaultRuntime: 'runc' });
}

describe('the CRIU probe', () => {
  it('runs `criu check` without blocking the event loop', async () => {
    fakeCriu(0);
    backend = makeBackend();
    // Answered later: checkpoint is "no" until then.
    expect(backend.features().checkpoint).toBe(false);
    // This timer releases criu while it runs: it can only fire if the probe leaves the loop free.
    await onTimer(() => criuLog().includes('started'), () => fs.writeFileSync(path.join(dir, 'release'), ''));
    await onTimer(() => criuLog().length >= 2);
    expect(criuLog()).toEqual(['started', 'released']);
    expect(await backend.checkpointSupported()).toBe(true);
    expect(backend.features().checkpoint).toBe(true);
  }, 30_000); // a blocking probe waits for its criu to give up (~8 s) before this test can fail

  it('says no when `criu check` fails', async () => {
    fakeCriu(1);
    backend = makeBackend();
    await onTimer(() => criuLog().includes('started'), () => fs.writeFileSync(path.join(dir, 'release'), ''));
    expect(await backend.checkpointSupported()).toBe(false);
    expect(backend.features().checkpoint).toBe(false);
    expect(criuLog()).toEqual(['started', 'released']);
  });

  it('says no without criu on PATH', async () => {
    process.env.PATH = path.join(dir, 'nothing-here');
    backend = makeBackend();
    expect(await backend.checkpointSupported()).toBe(false);
    expect(criuLog()).toEqual([]);
  });
});
