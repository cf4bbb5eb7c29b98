/**
 * A reference dockerd (Debian's docker.io) on its own temp socket, data root and exec root,
 * never a dependency of berth: the e2e suites run the same commands against it to record
 * what dockerd answers (fixtures), when BERTH_E2E_RECORD=1.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { apiRequest, dockerCli, dockerInPty, testImageTarball, type Berthd } from './berthd.js';

export function dockerdAvailable(): boolean {
  return fs.existsSync('/usr/sbin/dockerd') && process.getuid?.() === 0;
}

/** Start dockerd (no bridge, no iptables) and wait for /_ping; same handle shape as berthd's. */
export async function startDockerd(): Promise<Berthd> {
  const dir = fs.mkdtempSync(path.join('/tmp', 'dd-'));
  const socket = path.join(dir, 'docker.sock');
  const configDir = path.join(dir, 'docker-config');
  fs.mkdirSync(configDir);
  fs.writeFileSync(path.join(dir, 'daemon.json'), '{}');
  const child = spawn(
    '/usr/sbin/dockerd',
    ['-H', `unix://${socket}`, '--data-root', path.join(dir, 'data'), '--exec-root', path.join(dir, 'exec'), '--pidfile', path.join(dir, 'dockerd.pid'), '--bridge=none', '--iptables=false', '--ip-masq=false', '--config-file', path.join(dir, 'daemon.json')],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  let exitCode: number | null | undefined;
  let exitSignal: NodeJS.Signals | null = null;
  const exited = new Promise<number | null>((r) =>
    child.on('exit', (c, signal) => {
      exitSignal = signal;
      r((exitCode = c));
    }),
  );
  const host = `unix://${socket}`;
  const d: Berthd = {
    dir,
    socket,
    host,
    dataRoot: path.join(dir, 'data'),
    execRoot: path.join(dir, 'exec'),
    pidfile: path.join(dir, 'dockerd.pid'),
    process: child,
    log: () => output,
    exited: () => exited.then((code) => ({ code, signal: exitSignal })),
    docker: (a, o) => dockerCli(host, configDir, a, o),
    dockerInPty: (a, i, o) => dockerInPty(host, configDir, a, i, o),
    api: (m, p, b) => apiRequest(socket, m, p, b),
    async loadTestImage() {
      const r = await dockerCli(host, configDir, ['load', '-i', testImageTarball()]);
      if (r.code !== 0) throw new Error(`docker load failed: ${r.stderr}`);
    },
    async stop() {
      if (exitCode !== undefined) return exitCode;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 20_000);
      const c = await exited;
      clearTimeout(t);
      return c;
    },
    async cleanup() {
      await d.stop();
      spawn('umount', ['-R', '-l', dir], { stdio: 'ignore' });
      await new Promise((r) => setTimeout(r, 200));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exitCode !== undefined) throw new Error(`dockerd exited early:\n${output}`);
    try {
      if ((await apiRequest(socket, 'GET', '/_ping')).status === 200) return d;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) {
      await d.cleanup();
      throw new Error(`dockerd did not start:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
