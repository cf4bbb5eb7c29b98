/**
 * Test registries on 127.0.0.1: Debian's `docker-registry` (distribution 2.8) with its own
 * config and storage in a temp dir, optionally with htpasswd (bcrypt) auth, and a small
 * Bearer-token front (token endpoint with Basic credentials + a proxy that demands the token).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { tempDir } from './helpers.js';

/** Why the tests against a real registry cannot run (null: docker-registry is installed). */
export const registrySkip = spawnSync('sh', ['-c', 'command -v docker-registry'], { encoding: 'utf8' }).status === 0 ? null : 'docker-registry is not installed (apt-get install docker-registry)';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

export interface TestRegistry {
  host: string;
  port: number;
  storage: string;
  stop(): Promise<void>;
}

export async function startRegistry(opts: { user?: string; password?: string } = {}): Promise<TestRegistry> {
  const dir = await tempDir('berth-registry-');
  const port = await freePort();
  const storage = path.join(dir, 'storage');
  await fsp.mkdir(storage);
  let auth = '';
  if (opts.user) {
    const hash = bcrypt.hashSync(opts.password ?? '', 10).replace(/^\$2b\$/, '$2y$');
    await fsp.writeFile(path.join(dir, 'htpasswd'), `${opts.user}:${hash}\n`);
    auth = `auth:\n  htpasswd:\n    realm: berth-test\n    path: ${path.join(dir, 'htpasswd')}\n`;
  }
  const config = `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${storage}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n${auth}`;
  await fsp.writeFile(path.join(dir, 'config.yml'), config);
  const proc: ChildProcess = spawn('docker-registry', ['serve', path.join(dir, 'config.yml')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    await fsp.rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/v2/`);
      await r.body?.cancel();
      if (r.status === 200 || r.status === 401) break;
    } catch {
      // not up yet
    }
    if (proc.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`docker-registry did not start: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { host: `127.0.0.1:${port}`, port, storage, stop };
}

/** A Bearer-token front for `upstream`: GET /token (Basic user:password) issues tokens; everything else needs one. */
export async function startTokenFront(upstream: TestRegistry, user: string, password: string): Promise<{ host: string; tokenRequests: string[]; stop(): Promise<void> }> {
  const port = await freePort();
  const tokens = new Set<string>();
  const tokenRequests: string[] = [];
  const host = `127.0.0.1:${port}`;
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', `http://${host}`);
    if (url.pathname === '/token') {
      tokenRequests.push(url.search);
      const expected = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
      if (req.headers.authorization !== expected) {
        res.writeHead(401, { 'Content-Type': 'application/json' }).end('{"details":"bad credentials"}');
        return;
      }
      const token = `tok-${tokens.size}-${Math.random().toString(16).slice(2)}`;
      tokens.add(token);
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ token }));
      return;
    }
    const auth = req.headers.authorization ?? '';
    if (!auth.startsWith('Bearer ') || !tokens.has(auth.slice(7))) {
      const name = /^\/v2\/(.+?)\/(manifests|blobs|tags)\//.exec(url.pathname)?.[1];
      res.writeHead(401, {
        'WWW-Authenticate': `Bearer realm="http://${host}/token",service="berth-test"${name ? `,scope="repository:${name}:pull"` : ''}`,
        'Content-Type': 'application/json',
      });
      res.end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
      return;
    }
    const headers = { ...req.headers, host: upstream.host };
    delete headers.authorization;
    const up = http.request({ host: '127.0.0.1', port: upstream.port, method: req.method, path: req.url, headers }, (ur) => {
      const h = { ...ur.headers };
      if (h.location) h.location = h.location.replace(upstream.host, host);
      res.writeHead(ur.statusCode ?? 502, h);
      ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()));
  return {
    host,
    tokenRequests,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
