/**
 * vitest globalSetup of the e2e project: one temp dir per run (BERTH_E2E_RUN_DIR, inherited by
 * the test processes) for what the helpers build once per test process — the test image
 * tarball — removed when the run ends, also when vitest ended a test process without a normal
 * exit (its own `exit` hook then never ran).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export default function setup(): () => void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-e2e-run-'));
  process.env.BERTH_E2E_RUN_DIR = dir;
  return () => fs.rmSync(dir, { recursive: true, force: true });
}
