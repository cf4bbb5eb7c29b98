/**
 * In-process berthd for daemon tests: a config on a temp dir (socket, data root, exec root,
 * pidfile under it) and a plain request over its unix socket. No runc needed as long as the
 * test starts nothing on the OCI runtime.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterEach } from 'vitest';
import { definePlugin, type PluginDefinition, type RuntimeBackend } from '@berth/core';
import { defaultConfig, startBerthd, type DaemonConfig, type RunningDaemon, type StartBerthdOptions } from '../../src/index.js';

/** berthd's defaults with every path under `dir` and quiet logs; `extra` overrides. */
export function tempDaemonConfig(dir: string, extra: Partial<DaemonConfig> = {}): DaemonConfig {
  return {
    ...defaultConfig(),
    hosts: [`unix://${path.join(dir, 'berth.sock')}`],
    dataRoot: path.join(dir, 'data'),
    execRoot: path.join(dir, 'exec'),
    pidfile: path.join(dir, 'berthd.pid'),
    logLevel: 'error',
    // no default bridge network (network-cni would make the host bridge berth0 as root): network tests ask for one
    network: { bridge: 'none' },
    ...extra,
  };
}

export interface UnixResponse {
  status: number;
  body: string;
  json(): any;
}

/** One request over a unix socket; the body (when given) as JSON. */
export function unixRequest(sock: string, method: string, p: string, body?: unknown): Promise<UnixResponse> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request({ socketPath: sock, method, path: p, headers: data ? { 'Content-Type': 'application/json' } : {} }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, json: () => JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

export interface BerthdPerTest {
  /** Make the test's temp dir (a new one each call). */
  dir(): string;
  start(config: DaemonConfig, opts?: StartBerthdOptions): Promise<RunningDaemon>;
  /**
   * berthd on a new dir with `backend` (a FakeRuntime: no runc) as the runtime backend of a
   * plugin `fake-backend` (`plugin`: more of its definition) and a plain rootfs `plain` (an
   * /etc/passwd with root) to create containers from; `extra`: more config. Its dir and socket.
   */
  startWithBackend(backend: RuntimeBackend, extra?: Partial<DaemonConfig>, plugin?: Partial<PluginDefinition<Record<string, unknown>>>): Promise<{ dir: string; sock: string }>;
}

/**
 * One in-process berthd per test: `dir()` makes the test's temp dir, `start()` starts berthd
 * (no signal handlers), `startWithBackend()` one with a fake runtime backend; after each test the
 * daemon is shut down and the dir removed.
 */
export function berthdPerTest(prefix: string): BerthdPerTest {
  let dir: string | undefined;
  let daemon: RunningDaemon | undefined;
  afterEach(async () => {
    await daemon?.shutdown('test');
    daemon = undefined;
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });
  const h: BerthdPerTest = {
    dir: () => (dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))),
    start: async (config, opts = {}) => (daemon = await startBerthd(config, { handleSignals: false, ...opts })),
    async startWithBackend(backend, extra = {}, plugin = {}) {
      const d = h.dir();
      fs.mkdirSync(path.join(d, 'rootfs', 'plain', 'etc'), { recursive: true });
      fs.writeFileSync(path.join(d, 'rootfs', 'plain', 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
      const def = definePlugin<Record<string, unknown>>({
        name: 'fake-backend',
        type: 'io.example.runtime.v1',
        requires: ['io.berth.runtime.v1'],
        ...plugin,
        register(_c, ctx) {
          ctx.registerBackend(backend);
        },
      });
      await h.start(tempDaemonConfig(d, { rootfsDir: path.join(d, 'rootfs'), ...extra }), { plugins: [def] });
      return { dir: d, sock: path.join(d, 'berth.sock') };
    },
  };
  return h;
}
