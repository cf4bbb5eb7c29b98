/**
 * The image story end to end with the real docker CLI against an embedded berthd (real runc
 * and conmon, the built-in image-store plugin, overlayfs): load, run, save | load keeps the ID,
 * import, tag + push to a local docker-registry, rmi, pull back and run, rmi of an image in
 * use (409), commit then run. Skips with a stated reason when the host cannot run it or the
 * daemon does not serve the /images routes yet.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig, startBerthd, type RunningDaemon } from '@berth/daemon';
import { mountPoints } from '@berth/image-store';
import { which } from './helpers/berthd.js';
import { REPO, runtimeSkipReason } from './runtime-helpers.js';

const hostSkip = runtimeSkipReason() ?? (which('docker') ? null : 'the docker CLI is not installed');
const noRegistry = which('docker-registry') ? null : 'docker-registry is not installed (apt-get install docker-registry)';

let dir = '';
let sock = '';
let daemon: RunningDaemon | null = null;
let routeSkip: string | null = null;
let img = { saveTar: '', layerTar: '', id: '' };

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the docker CLI against our daemon (async: the daemon lives in this process). */
function docker(args: string[], opts: { stdinFile?: string; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const stdin = opts.stdinFile ? fs.openSync(opts.stdinFile, 'r') : 'ignore';
    const child = spawn('docker', args, {
      env: { ...process.env, DOCKER_HOST: `unix://${sock}`, DOCKER_CONFIG: path.join(dir, 'docker-config'), DOCKER_CLI_HINTS: 'false' },
      stdio: [stdin, 'pipe', 'pipe'],
    });
    if (typeof stdin === 'number') fs.closeSync(stdin);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

async function ok(args: string[], opts?: Parameters<typeof docker>[1]): Promise<string> {
  const r = await docker(args, opts);
  if (r.code !== 0) throw new Error(`docker ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

function apiGet(p: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: sock, path: p, method: 'GET' }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  if (hostSkip) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-img-e2e-'));
  sock = path.join(dir, 'berth.sock');
  fs.mkdirSync(path.join(dir, 'docker-config'));
  const out = path.join(dir, 'image');
  fs.mkdirSync(out);
  const { execFileSync } = await import('node:child_process');
  const built = execFileSync('bash', [path.join(REPO, 'scripts/build-test-image.sh'), out], { encoding: 'utf8' });
  const m = /image ID (sha256:[0-9a-f]{64}) \(layer DiffID sha256:([0-9a-f]{64})\)/.exec(built)!;
  img = { saveTar: path.join(out, 'busybox.tar'), layerTar: path.join(dir, 'rootfs.tar'), id: m[1] };
  // a plain root filesystem tarball for docker import: the image's own layer
  execFileSync('tar', ['-xf', img.saveTar, '-C', dir, `blobs/sha256/${m[2]}`]);
  fs.renameSync(path.join(dir, 'blobs/sha256', m[2]), img.layerTar);
  const config = {
    ...defaultConfig(),
    hosts: [`unix://${sock}`],
    dataRoot: path.join(dir, 'data'),
    execRoot: path.join(dir, 'exec'),
    pidfile: path.join(dir, 'berthd.pid'),
    logLevel: 'error' as const,
    group: '',
    // no default bridge (network-cni would make the host bridge berth0 as root and leave it)
    network: { ...defaultConfig().network, bridge: 'none' },
  };
  // the image-store plugin is one of berthd's built-ins
  daemon = await startBerthd(config, { handleSignals: false });
  const status = await apiGet('/images/json');
  if (status === 404) routeSkip = 'the daemon does not serve /images routes yet (packages/daemon)';
}, 120_000);

afterAll(async () => {
  try {
    if (daemon) {
      await docker(['rm', '-f', 'img-e2e-commit', 'img-e2e-inuse', 'img-e2e-diff']).catch(() => undefined);
      await daemon.shutdown('test end');
    }
  } finally {
    for (const m of mountPoints()) if (dir && m.startsWith(dir)) await new Promise((r) => spawn('umount', ['-l', m]).on('close', r));
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);

describe.skipIf(!!hostSkip)(`docker CLI image workflow${hostSkip ? ` (skipped: ${hostSkip})` : ''}`, () => {
  it('docker load -i, then docker run --rm berth-test/busybox echo hi', async (ctx) => {
    if (routeSkip) return ctx.skip(routeSkip);
    const loaded = await ok(['load', '-i', img.saveTar]);
    expect(loaded).toContain('Loaded image: berth-test/busybox:latest');
    expect((await ok(['image', 'inspect', '-f', '{{.Id}}', 'berth-test/busybox'])).trim()).toBe(img.id);
    expect(await ok(['run', '--rm', 'berth-test/busybox', 'echo', 'hi'])).toBe('hi\n');
  });

  it('docker save | docker load keeps the image ID', async (ctx) => {
    if (routeSkip) return ctx.skip(routeSkip);
    const saved = path.join(dir, 'saved.tar');
    await ok(['save', '-o', saved, 'berth-test/busybox']);
    await ok(['tag', 'berth-test/busybox', 'berth-test/busybox:copy']);
    await ok(['rmi', 'berth-test/busybox:copy']);
    expect(await ok(['load', '-i', saved])).toContain('berth-test/busybox:latest');
    expect((await ok(['image', 'inspect', '-f', '{{.Id}}', 'berth-test/busybox'])).trim()).toBe(img.id);
  });

  it('docker import, then run the imported image', async (ctx) => {
    if (routeSkip) return ctx.skip(routeSkip);
    const id = (await ok(['import', '--change', 'CMD ["/bin/echo","imported"]', '-', 'imported:v1'], { stdinFile: img.layerTar })).trim();
    expect(id).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(await ok(['run', '--rm', 'imported:v1'])).toBe('imported\n');
  });

  it('docker rmi of an image in use → conflict', async (ctx) => {
    if (routeSkip) return ctx.skip(routeSkip);
    await ok(['create', '--name', 'img-e2e-inuse', 'berth-test/busybox', 'true']);
    const r = await docker(['rmi', img.id]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`conflict: unable to delete ${img.id.slice(7, 19)} (must be forced) - image is being used by stopped container`);
    await ok(['rm', 'img-e2e-inuse']);
  });

  it('docker commit, then run the new image', async (ctx) => {
    if (routeSkip) return ctx.skip(routeSkip);
    await ok(['run', '--name', 'img-e2e-commit', 'berth-test/busybox', 'sh', '-c', 'echo committed > /marker']);
    await ok(['commit', 'img-e2e-commit', 'committed:v1']);
    expect(await ok(['run', '--rm', 'committed:v1', 'cat', '/marker'])).toBe('committed\n');
    await ok(['rm', 'img-e2e-commit']);
  });

  it('docker images, history, diff, image prune', async (ctx) => {
    if (routeSkip) return ctx.skip(routeSkip);
    expect((await ok(['images', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}'])).split('\n')).toContain(`berth-test/busybox:latest ${img.id.slice(7, 19)}`);
    expect(await ok(['history', '--no-trunc', '--format', '{{.CreatedBy}}', 'berth-test/busybox'])).toContain('build-test-image.sh');
    await ok(['run', '--name', 'img-e2e-diff', 'berth-test/busybox', 'sh', '-c', 'echo x > /tmp/f; rm /etc/group']);
    const diff = (await ok(['diff', 'img-e2e-diff'])).trim().split('\n');
    expect(diff).toEqual(expect.arrayContaining(['C /etc', 'D /etc/group', 'C /tmp', 'A /tmp/f']));
    await ok(['rm', 'img-e2e-diff']);
    // a dangling image (import without a name) goes with prune; tagged ones stay
    const dangling = (await ok(['import', '-'], { stdinFile: img.layerTar })).trim();
    expect((await ok(['images', '-q', '--no-trunc', '--filter', 'dangling=true'])).trim().split('\n')).toContain(dangling);
    expect(await ok(['image', 'prune', '-f'])).toContain(`deleted: ${dangling}`);
    expect((await ok(['images', '-q', '--no-trunc'])).split('\n')).toContain(img.id);
  });

  it.skipIf(noRegistry !== null)(`docker login to a registry with htpasswd auth, push and pull a private image${noRegistry ? ` (skipped: ${noRegistry})` : ''}`, async (ctx) => {
    if (routeSkip) return ctx.skip(routeSkip);
    const { startRegistry } = await import('../../packages/image-store/test/registry-server.js');
    const reg = await startRegistry({ user: 'alice', password: 's3cret' });
    try {
      const name = `${reg.host}/private/busybox:v1`;
      await ok(['tag', 'berth-test/busybox', name]);
      const denied = await docker(['push', name]);
      expect(denied.code).not.toBe(0);
      const bad = await docker(['login', reg.host, '-u', 'alice', '-p', 'wrong']);
      expect(bad.code).not.toBe(0);
      const pwFile = path.join(dir, 'pw');
      fs.writeFileSync(pwFile, 's3cret');
      expect(await ok(['login', reg.host, '-u', 'alice', '--password-stdin'], { stdinFile: pwFile })).toContain('Login Succeeded');
      await ok(['push', name]);
      await ok(['rmi', name]);
      await ok(['pull', name]);
      expect(await ok(['run', '--rm', name, 'echo', 'private'])).toBe('private\n');
      await ok(['logout', reg.host]);
    } finally {
      await reg.stop();
    }
  });

  it.skipIf(noRegistry !== null)(`docker tag + push to a local registry, rmi, pull back and run${noRegistry ? ` (skipped: ${noRegistry})` : ''}`, async (ctx) => {
    if (routeSkip) return ctx.skip(routeSkip);
    const { startRegistry } = await import('../../packages/image-store/test/registry-server.js');
    const reg = await startRegistry();
    try {
      const name = `${reg.host}/busybox`;
      await ok(['tag', 'berth-test/busybox', name]);
      const pushed = await ok(['push', name]);
      expect(pushed).toMatch(/latest: digest: sha256:[0-9a-f]{64} size: \d+/);
      await ok(['rmi', name]);
      const pulled = await ok(['pull', name]);
      // the layers are still there (berth-test/busybox): nothing to download, but the tag is new
      expect(pulled).toContain('Already exists');
      expect(pulled).toContain(`Status: Downloaded newer image for ${name}:latest`);
      expect(await ok(['run', '--rm', name, 'echo', 'pulled'])).toBe('pulled\n');
    } finally {
      await reg.stop();
    }
  });
});
