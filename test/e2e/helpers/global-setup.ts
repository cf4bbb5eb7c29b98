/**
 * vitest globalSetup of the e2e project: one temp dir per run (BERTH_E2E_RUN_DIR, inherited by
 * the test processes) for what the helpers build once per test process — the test image
 * tarball — removed when the run ends, also when vitest ended a test process without a normal
 * exit (its own `exit` hook then never ran). It also holds the resolv.conf every test berthd's
 * user-network DNS servers relay unknown names to (BERTH_DNS_RESOLV_CONF): 127.0.0.1, where
 * nothing answers, so no lookup a test makes leaves the machine (a name no container has gets
 * SERVFAIL instead of reaching the host's resolvers).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export default function setup(): () => void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-e2e-run-'));
  process.env.BERTH_E2E_RUN_DIR = dir;
  const resolvConf = path.join(dir, 'resolv.conf');
  fs.writeFileSync(resolvConf, 'nameserver 127.0.0.1\n');
  process.env.BERTH_DNS_RESOLV_CONF = resolvConf;
  return () => fs.rmSync(dir, { recursive: true, force: true });
}
