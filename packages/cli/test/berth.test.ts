/**
 * `berth plugins` and `berth explain` against an in-process berthd on temp dirs (a FakeRuntime
 * backend added by the build, so no runc): the table and tree, --format json equal to the API,
 * the daemon chosen by -H over DOCKER_HOST, the daemon's errors (404) as exit code 1 with its
 * message, a bad command line as 125.
 */
import fs from 'node:fs';
import path from 'node:path';
import { definePlugin, Stage } from '@berth/core';
import { FakeRuntime } from '@berth/testing';
import { describe, expect, it } from 'vitest';
import { berthdPerTest, tempDaemonConfig, unixRequest } from '../../daemon/test/helpers/temp-berthd.js';
import { main, type CliIo } from '../src/berth.js';

const berthd = berthdPerTest('berth-cli-');

/** A plugin whose specBuild tap only concerns containers labelled gpu=yes. */
const gpu = definePlugin({
  name: 'gpu',
  type: 'io.example.device.v1',
  version: '2.0.0',
  config: { token: 'hidden-token', devices: ['/dev/gpu0'] },
  secretConfigKeys: ['token'],
  apply(hooks) {
    hooks.specBuild.tapPromise({ name: 'gpu-env', stage: Stage.RESOURCES, when: (c) => c.Config.Labels?.gpu === 'yes' }, async (spec) => ({
      ...spec,
      process: { ...spec.process!, env: [...(spec.process?.env ?? []), 'GPU=1'] },
    }));
  },
});

async function start(): Promise<string> {
  const dir = berthd.dir();
  fs.mkdirSync(path.join(dir, 'rootfs', 'plain', 'etc'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'rootfs', 'plain', 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  const fake = new FakeRuntime({ name: 'fake', runtimes: ['fake'], script: { runFor: 60_000 } });
  const backend = definePlugin({ name: 'fake-backend', type: 'io.example.runtime.v1', requires: ['io.berth.runtime.v1'], register: (_c, ctx) => ctx.registerBackend(fake) });
  await berthd.start(tempDaemonConfig(dir, { rootfsDir: path.join(dir, 'rootfs') }), { plugins: [backend, gpu] });
  return path.join(dir, 'berth.sock');
}

async function run(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: CliIo = { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) }, env, cwd: process.cwd() };
  const code = await main(argv, io);
  return { code, out, err };
}

describe('berth plugins', () => {
  it('prints a table of every plugin; --format json is the API answer; DOCKER_HOST picks the daemon', async () => {
    const sock = await start();
    const table = await run(['plugins', '--no-trunc'], { DOCKER_HOST: `unix://${sock}` });
    expect(table.code).toBe(0);
    const lines = table.out.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^NAME\s+TYPE\s+VERSION\s+STATUS\s+HOOKS\s+CONFIG$/);
    const gpuRow = lines.find((l) => l.startsWith('gpu '))!;
    expect(gpuRow.split(/\s{3,}/)).toEqual(['gpu', 'io.example.device.v1', '2.0.0', 'loaded', 'specBuild', '{"token":"<redacted>","devices":["/dev/gpu0"]}']);
    expect(table.out).not.toContain('hidden-token');
    const api = (await unixRequest(sock, 'GET', '/berth/v1/plugins')).json();
    expect(lines.slice(1).map((l) => l.split(/\s+/)[0])).toEqual(api.map((p: { name: string }) => p.name));

    const json = await run(['-H', `unix://${sock}`, 'plugins', '--format', 'json'], { DOCKER_HOST: 'unix:///nowhere/berth.sock' });
    expect(json.code).toBe(0);
    expect(JSON.parse(json.out)).toEqual(api);
  });

  it('a daemon that is not there is exit code 1 naming the socket; a bad format is a usage error (125)', async () => {
    const gone = await run(['plugins', '-H', 'unix:///nowhere/berth.sock']);
    expect(gone.code).toBe(1);
    expect(gone.err).toMatch(/^berth: cannot connect to the berth daemon at unix:\/\/\/nowhere\/berth\.sock/);
    const bad = await run(['plugins', '--format', 'yaml']);
    expect(bad.code).toBe(125);
    expect(bad.err).toContain("argument 'yaml' is invalid");
  });
});

describe('berth explain', () => {
  it('prints the start hook by hook with each tap, the skipped selector and the spec paths; --format json is the API answer; 404 is exit code 1', async () => {
    const sock = await start();
    const host = ['-H', `unix://${sock}`];
    for (const [name, labels] of [['with-gpu', { gpu: 'yes' }], ['plain', {}]] as const) {
      const c = await unixRequest(sock, 'POST', `/containers/create?name=${name}`, { Image: 'plain', Cmd: ['true'], Labels: labels, HostConfig: { Runtime: 'fake' } });
      expect(c.status).toBe(201);
      expect((await unixRequest(sock, 'POST', `/containers/${name}/start`)).status).toBe(204);
    }

    const tree = await run([...host, 'explain', 'with-gpu']);
    expect(tree.code).toBe(0);
    const lines = tree.out.split('\n');
    expect(lines[0]).toMatch(/^container with-gpu \([0-9a-f]{12}\)$/);
    expect(lines[1]).toMatch(/^last start \S+ \(recorded by this daemon\)$/);
    const hooks = lines.filter((l) => /^[├└]─ /.test(l)).map((l) => l.slice(3));
    expect(hooks.indexOf('networking')).toBeLessThan(hooks.indexOf('specBuild'));
    expect(hooks.indexOf('specBuild')).toBeLessThan(hooks.indexOf('runtime.create'));
    const gpuLine = lines.findIndex((l) => l.includes('gpu (gpu-env)  stage 200'));
    expect(lines[gpuLine]).toMatch(/ms$/);
    expect(lines[gpuLine + 1]).toMatch(/sets spec path: process\.env\[\d+\]$/);
    expect(tree.out).toMatch(/seccomp {2}stage 500 {2}\S+ ms\n.*sets spec path: linux\.seccomp/);

    const plain = await run([...host, 'explain', 'plain']);
    expect(plain.out).toContain('gpu (gpu-env)  stage 200  skipped: its selector excludes this container');

    const json = await run([...host, 'explain', '--format', 'json', 'with-gpu']);
    expect(JSON.parse(json.out)).toEqual((await unixRequest(sock, 'GET', '/berth/v1/containers/with-gpu/explain')).json());

    const missing = await run([...host, 'explain', 'nope']);
    expect(missing).toEqual({ code: 1, out: '', err: 'berth: No such container: nope\n' });
    for (const name of ['with-gpu', 'plain']) await unixRequest(sock, 'POST', `/containers/${name}/kill`);
  });
});
