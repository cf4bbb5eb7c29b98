/**
 * Volumes end to end with the real docker CLI (and Debian's docker-compose 1.29) against an
 * embedded berthd (real runc and conmon, the built-in volumes plugin): a named volume shared
 * by two containers, `:ro`, an image VOLUME with copy-up (owner and mode kept), `docker rm -v`
 * and `--rm` removing anonymous volumes, `--volumes-from`, `docker volume
 * create/ls/inspect/rm/prune`, in use → 409, a local volume with DriverOpts (tmpfs) mounted
 * only while used and never left mounted by a failed start, docker cp into and out of a stopped
 * container reaching its tmpfs / bind-device volumes as dockerd does, a Docker volume plugin as driver,
 * and a compose project with a named volume (up, down, up: data kept; down -v: gone).
 * Containers run with `--network none` (compose: `network_mode: none`) so the test needs no
 * bridge networking. Last, with berthd as a child process: a volume stays "in use" across a
 * SIGKILL of the daemon. Skips with a stated reason when the host cannot run it.
 */
import { spawn, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig, startBerthd, type RunningDaemon } from '@berth/daemon';
import { mountPoints } from '@berth/image-store';
import { berthdSkipReason, startBerthd as startBerthdProcess, which, type Berthd } from './helpers/berthd.js';
import { composeSkipReason, runCompose } from './helpers/compose.js';
import { REPO, runtimeSkipReason } from './runtime-helpers.js';
import { startTestVolumePlugin, type TestVolumePlugin } from '../../plugins/volumes/test/plugin-server.js';

const hostSkip = runtimeSkipReason() ?? (which('docker') ? null : 'the docker CLI is not installed');
const composeSkip = composeSkipReason();
const IMG = 'berth-test/busybox';
const NONE = ['--network', 'none'];

let dir = '';
let sock = '';
let dataRoot = '';
let pluginDir = '';
let daemon: RunningDaemon | null = null;
let plugin: TestVolumePlugin | null = null;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function runCmd(cmd: string, args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd ?? dir,
      env: { ...process.env, DOCKER_HOST: `unix://${sock}`, DOCKER_CONFIG: path.join(dir, 'docker-config'), DOCKER_CLI_HINTS: 'false', COMPOSE_INTERACTIVE_NO_CLI: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 90_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

const docker = (args: string[]) => runCmd('docker', args);

async function ok(args: string[]): Promise<string> {
  const r = await docker(args);
  if (r.code !== 0) throw new Error(`docker ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

const volumeNames = async () => (await ok(['volume', 'ls', '-q'])).split('\n').filter(Boolean);
/** Mount points under the volumes dir of this daemon. */
const volumeMounts = () => [...mountPoints()].filter((m) => m.startsWith(path.join(dataRoot, 'volumes') + '/'));

beforeAll(async () => {
  if (hostSkip) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-vol-e2e-'));
  sock = path.join(dir, 'berth.sock');
  dataRoot = path.join(dir, 'data');
  pluginDir = path.join(dir, 'plugins');
  fs.mkdirSync(pluginDir);
  fs.mkdirSync(path.join(dir, 'docker-config'));
  const out = path.join(dir, 'image');
  fs.mkdirSync(out);
  execFileSync('bash', [path.join(REPO, 'scripts/build-test-image.sh'), out], { encoding: 'utf8' });
  const config = {
    ...defaultConfig(),
    hosts: [`unix://${sock}`],
    dataRoot,
    execRoot: path.join(dir, 'exec'),
    pidfile: path.join(dir, 'berthd.pid'),
    logLevel: 'error' as const,
    group: '',
  };
  config.build = { ...config.build, config: { ...config.build.config, volumes: { pluginDirs: [pluginDir] } } };
  daemon = await startBerthd(config, { handleSignals: false });
  plugin = await startTestVolumePlugin(path.join(pluginDir, 'testvol.sock'), path.join(dir, 'plugin-data'));
  await ok(['load', '-i', path.join(out, 'busybox.tar')]);
}, 180_000);

afterAll(async () => {
  try {
    if (daemon) {
      const ids = (await docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
      if (ids.length) await docker(['rm', '-f', ...ids]);
      await daemon.shutdown('test end');
    }
    await plugin?.close();
  } finally {
    for (const m of [...mountPoints()].reverse()) if (dir && m.startsWith(dir)) await new Promise((r) => spawn('umount', ['-l', m]).on('close', r));
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);

describe.skipIf(!!hostSkip)(`volumes through the docker CLI${hostSkip ? ` (skipped: ${hostSkip})` : ''}`, () => {
  it('a named volume is shared by two containers; :ro refuses writes; docker volume inspect shows it', async () => {
    expect((await ok(['volume', 'create', '--label', 'team=db', 'shared'])).trim()).toBe('shared');
    await ok(['run', '--rm', ...NONE, '-v', 'shared:/data', IMG, 'sh', '-c', 'echo hello > /data/f']);
    expect(await ok(['run', '--rm', ...NONE, '-v', 'shared:/data', IMG, 'cat', '/data/f'])).toBe('hello\n');
    const ro = await docker(['run', '--rm', ...NONE, '-v', 'shared:/data:ro', IMG, 'sh', '-c', 'echo x > /data/g']);
    expect(ro.code).not.toBe(0);
    expect(ro.stderr).toContain('Read-only file system');
    const [info] = JSON.parse(await ok(['volume', 'inspect', 'shared'])) as Array<Record<string, unknown>>;
    expect(info).toMatchObject({ Name: 'shared', Driver: 'local', Scope: 'local', Labels: { team: 'db' }, Mountpoint: path.join(dataRoot, 'volumes', 'shared', '_data') });
    expect(await ok(['volume', 'ls', '--filter', 'label=team=db', '--format', '{{.Name}} {{.Driver}}'])).toBe('shared local\n');
  });

  it('an image VOLUME becomes an anonymous volume with the image content copied up (owner, mode kept); docker rm -v removes it, --rm too', async () => {
    await ok(['run', '--name', 'vol-seed', ...NONE, IMG, 'sh', '-c', 'mkdir -p /seeded && echo seeded > /seeded/s && chown 1:2 /seeded/s && chmod 640 /seeded/s']);
    await ok(['commit', '--change', 'VOLUME /seeded', 'vol-seed', 'vol-img:v1']);
    await ok(['rm', 'vol-seed']);
    const before = await volumeNames();
    expect(await ok(['run', '--name', 'vol-anon', ...NONE, 'vol-img:v1', 'sh', '-c', 'stat -c "%u:%g %a" /seeded/s; cat /seeded/s'])).toBe('1:2 640\nseeded\n');
    const mounts = JSON.parse(await ok(['inspect', '-f', '{{json .Mounts}}', 'vol-anon'])) as Array<Record<string, unknown>>;
    expect(mounts).toHaveLength(1);
    expect(mounts[0]).toMatchObject({ Type: 'volume', Destination: '/seeded', Driver: 'local', RW: true });
    const anon = mounts[0]!.Name as string;
    expect(anon).toMatch(/^[0-9a-f]{64}$/);
    expect(mounts[0]!.Source).toBe(path.join(dataRoot, 'volumes', anon, '_data'));
    expect(await volumeNames()).toContain(anon);
    await ok(['rm', '-v', 'vol-anon']);
    expect(await volumeNames()).not.toContain(anon);
    await ok(['run', '--rm', ...NONE, '-v', '/scratch', 'vol-img:v1', 'true']);
    expect((await volumeNames()).sort()).toEqual(before.sort());
  });

  it('--volumes-from (with :ro) gives the other container\'s volumes; a volume in use cannot be removed (409 naming the container)', async () => {
    const src = (await ok(['create', '--name', 'vol-src', ...NONE, '-v', 'shared:/data', IMG, 'true'])).trim();
    expect(await ok(['run', '--rm', ...NONE, '--volumes-from', 'vol-src:ro', IMG, 'cat', '/data/f'])).toBe('hello\n');
    const w = await docker(['run', '--rm', ...NONE, '--volumes-from', 'vol-src:ro', IMG, 'sh', '-c', 'echo x > /data/f']);
    expect(w.stderr).toContain('Read-only file system');
    const rm = await docker(['volume', 'rm', 'shared']);
    expect(rm.code).not.toBe(0);
    expect(rm.stderr).toContain(`remove shared: volume is in use - [${src}]`);
    await ok(['rm', 'vol-src']);
  });

  it('docker volume prune removes unused anonymous volumes, named ones only with --all; rm of a missing volume is 404', async () => {
    await ok(['volume', 'create', 'dangling-named']);
    await ok(['create', '--name', 'vol-keep', ...NONE, '-v', '/anon-kept', IMG, 'true']);
    const kept = (JSON.parse(await ok(['inspect', '-f', '{{json .Mounts}}', 'vol-keep'])) as Array<{ Name: string }>)[0]!.Name;
    await ok(['rm', 'vol-keep']);
    const pruned = await ok(['volume', 'prune', '-f']);
    expect(pruned).toContain(kept);
    expect(await volumeNames()).toContain('dangling-named');
    expect(await ok(['volume', 'prune', '-f', '--all'])).toContain('dangling-named');
    expect(await volumeNames()).not.toContain('dangling-named');
    const missing = await docker(['volume', 'rm', 'no-such-volume']);
    expect(missing.stderr).toContain('no such volume');
    const bad = await docker(['volume', 'create', '../x']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('includes invalid characters for a local volume name');
  });

  it('local volumes with DriverOpts (tmpfs, a bind device) are mounted while used and unmounted at exit; a failed start leaves no mount', async () => {
    await ok(['volume', 'create', '-o', 'type=tmpfs', '-o', 'device=tmpfs', '-o', 'o=size=1m', 'tmpvol']);
    const data = path.join(dataRoot, 'volumes', 'tmpvol', '_data');
    expect(await ok(['run', '--rm', ...NONE, '-v', 'tmpvol:/t', IMG, 'sh', '-c', 'grep " /t " /proc/mounts | cut -d" " -f3'])).toBe('tmpfs\n');
    expect(volumeMounts()).not.toContain(data);
    const failed = await docker(['run', '--name', 'vol-fail', ...NONE, '-v', 'tmpvol:/t', IMG, '/no/such/binary']);
    expect(failed.code).not.toBe(0);
    expect(volumeMounts()).toEqual([]);
    await ok(['rm', 'vol-fail']);
    await ok(['volume', 'rm', 'tmpvol']);
    // a bind device: the container writes into the host directory the volume binds
    const hostDir = path.join(dir, 'bind-device');
    fs.mkdirSync(hostDir);
    await ok(['volume', 'create', '-o', 'type=none', '-o', 'o=bind', '-o', `device=${hostDir}`, 'bindvol']);
    await ok(['run', '--rm', ...NONE, '-v', 'bindvol:/b', IMG, 'sh', '-c', 'echo via-bind > /b/file']);
    expect(fs.readFileSync(path.join(hostDir, 'file'), 'utf8')).toBe('via-bind\n');
    expect(volumeMounts()).toEqual([]);
    await ok(['volume', 'rm', 'bindvol']);
    expect(fs.existsSync(path.join(hostDir, 'file'))).toBe(true);
  });

  it('docker cp into and out of a stopped container mounts its tmpfs / bind-device volumes for the copy and releases them, as dockerd does', async () => {
    const src = path.join(dir, 'cp-src');
    fs.writeFileSync(src, 'copied\n');
    // tmpfs: the copy lands in the tmpfs mounted for it, which goes with its release (dockerd's
    // last Unmount of a local volume unmounts it), never in the _data dir beneath
    await ok(['volume', 'create', '-d', 'local', '-o', 'type=tmpfs', '-o', 'device=tmpfs', 'cptmp']);
    const data = path.join(dataRoot, 'volumes', 'cptmp', '_data');
    await ok(['create', '--name', 'cp-tmpfs', ...NONE, '-v', 'cptmp:/t', IMG, 'sh', '-c', 'ls -A /t; grep " /t " /proc/mounts | cut -d" " -f3']);
    await ok(['cp', src, 'cp-tmpfs:/t/f']);
    expect(fs.readdirSync(data)).toEqual([]);
    expect(volumeMounts()).toEqual([]);
    const out = await docker(['cp', 'cp-tmpfs:/t/f', path.join(dir, 'cp-out-tmpfs')]);
    expect(out.code).not.toBe(0);
    expect(out.stderr).toContain('Could not find the file /t/f in container cp-tmpfs');
    expect(await ok(['start', '-a', 'cp-tmpfs'])).toBe('tmpfs\n');
    await expect.poll(volumeMounts).toEqual([]); // unmounted by the exit, which the CLI does not wait for
    await ok(['rm', 'cp-tmpfs']);
    await ok(['volume', 'rm', 'cptmp']);
    // a bind device: the copy lands in the bound host directory and the container sees it there
    const hostDir = path.join(dir, 'cp-bind-device');
    fs.mkdirSync(hostDir);
    fs.writeFileSync(path.join(hostDir, 'from-host'), 'host side\n');
    await ok(['volume', 'create', '-o', 'type=none', '-o', 'o=bind', '-o', `device=${hostDir}`, 'cpbind']);
    await ok(['create', '--name', 'cp-bind', ...NONE, '-v', 'cpbind:/b', IMG, 'cat', '/b/f']);
    await ok(['cp', src, 'cp-bind:/b/f']);
    expect(fs.readFileSync(path.join(hostDir, 'f'), 'utf8')).toBe('copied\n');
    expect(fs.readdirSync(path.join(dataRoot, 'volumes', 'cpbind', '_data'))).toEqual([]);
    await ok(['cp', 'cp-bind:/b/from-host', path.join(dir, 'cp-out-bind')]);
    expect(fs.readFileSync(path.join(dir, 'cp-out-bind'), 'utf8')).toBe('host side\n');
    // released after the last byte was sent: the CLI may exit at the tar's end before that
    await expect.poll(volumeMounts).toEqual([]);
    expect(await ok(['start', '-a', 'cp-bind'])).toBe('copied\n');
    await ok(['rm', 'cp-bind']);
    await ok(['volume', 'rm', 'cpbind']);
  });

  it('a Docker volume plugin serves a volume (create, mount for the container, unmount, remove)', async () => {
    await ok(['volume', 'create', '-d', 'testvol', 'pv']);
    await ok(['run', '--rm', ...NONE, '-v', 'pv:/pv', IMG, 'sh', '-c', 'echo from-plugin > /pv/x']);
    expect(fs.readFileSync(path.join(plugin!.volumes.get('pv')!.path, 'x'), 'utf8')).toBe('from-plugin\n');
    expect(plugin!.calls.map((c) => c.call)).toEqual(expect.arrayContaining(['VolumeDriver.Create', 'VolumeDriver.Mount', 'VolumeDriver.Unmount']));
    expect(await ok(['volume', 'ls', '--filter', 'driver=testvol', '--format', '{{.Name}}'])).toBe('pv\n');
    await ok(['volume', 'rm', 'pv']);
    expect(plugin!.volumes.has('pv')).toBe(false);
  });

  it.skipIf(!!composeSkip)(`docker-compose: a named volume keeps its data across down/up and goes with down -v${composeSkip ? ` (skipped: ${composeSkip})` : ''}`, async () => {
    const proj = path.join(dir, 'proj');
    fs.mkdirSync(proj);
    fs.writeFileSync(
      path.join(proj, 'docker-compose.yml'),
      [
        "version: '3.8'",
        'services:',
        '  app:',
        `    image: ${IMG}`,
        '    network_mode: none',
        "    command: ['sh', '-c', 'echo run >> /data/log']",
        '    volumes:',
        '      - data:/data',
        'volumes:',
        '  data: {}',
        '',
      ].join('\n'),
    );
    const compose = async (args: string[]) => {
      const r = await runCompose({ host: `unix://${sock}`, dir }, proj, 'volproj', args);
      if (r.code !== 0) throw new Error(`docker-compose ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
      return r;
    };
    await compose(['up', '--exit-code-from', 'app']);
    await compose(['down']);
    expect(await volumeNames()).toContain('volproj_data');
    await compose(['up', '--exit-code-from', 'app']);
    expect(await ok(['run', '--rm', ...NONE, '-v', 'volproj_data:/data', IMG, 'cat', '/data/log'])).toBe('run\nrun\n');
    await compose(['down', '-v']);
    expect(await volumeNames()).not.toContain('volproj_data');
  });
});

describe.skipIf(berthdSkipReason() !== null)(`volume state across a berthd SIGKILL${berthdSkipReason() ? ` (skipped: ${berthdSkipReason()})` : ''}`, () => {
  let d: Berthd | undefined;
  afterAll(async () => {
    const dirOf = d?.dir;
    await d?.cleanup();
    if (dirOf) fs.rmSync(dirOf, { recursive: true, force: true });
  }, 120_000);

  it('a volume used by a container is still in use after berthd is SIGKILLed and started again (409 naming the container)', async () => {
    d = await startBerthdProcess();
    await d.loadTestImage();
    const run = await d.docker(['run', '-d', '--name', 'vol-kill', ...NONE, '-v', 'kept:/k', IMG, 'sleep', '300']);
    expect(run.code).toBe(0);
    const id = run.stdout.trim();
    await d.stop('SIGKILL');
    d = await startBerthdProcess({ dir: d.dir });
    const rm = await d.docker(['volume', 'rm', 'kept']);
    expect(rm.code).not.toBe(0);
    expect(rm.stderr).toContain(`remove kept: volume is in use - [${id}]`);
    expect((await d.docker(['rm', '-f', 'vol-kill'])).code).toBe(0);
    expect((await d.docker(['volume', 'rm', 'kept'])).code).toBe(0);
  });
});
