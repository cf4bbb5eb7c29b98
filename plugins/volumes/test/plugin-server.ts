/**
 * A small Docker volume plugin for the tests: an HTTP server on a unix socket speaking the
 * VolumeDriver protocol, keeping its volumes as directories under `dir`. It journals every
 * call and can be told to fail one (`failNext`).
 */
import { createServer, type Server } from 'node:http';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

export interface TestVolumePlugin {
  socket: string;
  calls: Array<{ call: string; body: Record<string, unknown> }>;
  volumes: Map<string, { path: string; opts: Record<string, string>; mounts: Set<string> }>;
  /** The next call of this name answers `{"Err": …}`. */
  failNext(call: string, err: string): void;
  close(): Promise<void>;
}

export async function startTestVolumePlugin(socket: string, dataDir: string): Promise<TestVolumePlugin> {
  const volumes: TestVolumePlugin['volumes'] = new Map();
  const calls: TestVolumePlugin['calls'] = [];
  const failures = new Map<string, string>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const call = (req.url ?? '').replace(/^\//, '');
      const body = (chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : {}) as Record<string, unknown>;
      calls.push({ call, body });
      const send = (status: number, out: unknown) => {
        res.writeHead(status, { 'Content-Type': 'application/vnd.docker.plugins.v1.2+json' });
        res.end(JSON.stringify(out));
      };
      const fail = failures.get(call);
      if (fail !== undefined) {
        failures.delete(call);
        return send(500, { Err: fail });
      }
      const name = String(body.Name ?? '');
      const v = volumes.get(name);
      switch (call) {
        case 'Plugin.Activate':
          return send(200, { Implements: ['VolumeDriver'] });
        case 'VolumeDriver.Create': {
          const path = join(dataDir, name);
          mkdirSync(path, { recursive: true });
          volumes.set(name, { path, opts: (body.Opts ?? {}) as Record<string, string>, mounts: new Set() });
          return send(200, { Err: '' });
        }
        case 'VolumeDriver.Remove':
          if (!v) return send(200, { Err: `no such volume ${name}` });
          rmSync(v.path, { recursive: true, force: true });
          volumes.delete(name);
          return send(200, { Err: '' });
        case 'VolumeDriver.Mount':
          if (!v) return send(200, { Err: `no such volume ${name}` });
          v.mounts.add(String(body.ID));
          return send(200, { Mountpoint: v.path, Err: '' });
        case 'VolumeDriver.Unmount':
          v?.mounts.delete(String(body.ID));
          return send(200, { Err: '' });
        case 'VolumeDriver.Path':
          return send(200, { Mountpoint: v?.mounts.size ? v.path : '', Err: '' });
        case 'VolumeDriver.Get':
          if (!v) return send(200, { Err: `no such volume ${name}` });
          return send(200, { Volume: { Name: name, Mountpoint: v.path, Status: { mounts: v.mounts.size } }, Err: '' });
        case 'VolumeDriver.List':
          return send(200, { Volumes: [...volumes.entries()].map(([n, x]) => ({ Name: n, Mountpoint: x.path })), Err: '' });
        case 'VolumeDriver.Capabilities':
          return send(200, { Capabilities: { Scope: 'local' } });
        default:
          return send(404, { Err: `unknown call ${call}` });
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socket, () => resolve());
  });
  return {
    socket,
    calls,
    volumes,
    failNext: (call, err) => void failures.set(call, err),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
