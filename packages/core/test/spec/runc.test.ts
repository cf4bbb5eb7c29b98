/**
 * Runs built specs with the real runc (root only; skipped otherwise): the spec is not only
 * schema-valid and dockerd-shaped, the runtime accepts it and the container sees what the
 * Config/HostConfig asked for. Every container, bundle and cgroup is removed afterwards.
 */
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, rmdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildOciSpec, type SpecBuildInput } from '../../src/spec/index.js';
import type { ContainerConfig, HostConfig } from '../../src/types.js';
import { makeRecord, tempDir, tempRootfs } from './helpers.js';

const run = promisify(execFile);
const RUNC = ['/usr/sbin/runc', '/usr/bin/runc', '/usr/local/sbin/runc'].find((p) => existsSync(p));
const BUSYBOX = ['/bin/busybox', '/usr/bin/busybox'].find((p) => existsSync(p));
const skip = process.getuid?.() !== 0 ? 'needs root' : RUNC === undefined ? 'runc is not installed' : BUSYBOX === undefined ? 'busybox is not installed' : null;
const CGROUP_PARENT = `/berth-spectest-${process.pid}`;

let rootfs: { dir: string; cleanup: () => void };
let work: { dir: string; cleanup: () => void };
let n = 0;

beforeAll(() => {
  if (skip !== null) return;
  rootfs = tempRootfs();
  chmodSync(rootfs.dir, 0o755); // mkdtemp makes it 0700: a non-root user could not use its own /
  mkdirSync(path.join(rootfs.dir, 'bin'));
  mkdirSync(path.join(rootfs.dir, 'tmp'));
  copyFileSync(BUSYBOX!, path.join(rootfs.dir, 'bin/busybox'));
  chmodSync(path.join(rootfs.dir, 'bin/busybox'), 0o755);
  for (const a of ['sh', 'id', 'cat', 'hostname', 'touch', 'grep', 'wc', 'pwd', 'env', 'ls', 'echo']) symlinkSync('busybox', path.join(rootfs.dir, 'bin', a));
  work = tempDir('berth-spectest-runc-');
});

afterAll(() => {
  if (skip !== null) return;
  // runc removes each container's cgroup; the parent is ours to remove
  const base = '/sys/fs/cgroup';
  for (const dir of [base, ...readdirSync(base).map((d) => path.join(base, d))]) {
    try {
      rmdirSync(path.join(dir, CGROUP_PARENT));
    } catch {
      // not created under this hierarchy
    }
  }
  work?.cleanup();
  rootfs?.cleanup();
});

/** Builds the spec, runs `sh -c script` in it with runc, returns stdout (and removes the container). */
async function runIn(script: string, config: ContainerConfig = {}, hostConfig: HostConfig = {}, extra: Partial<SpecBuildInput> = {}): Promise<string> {
  const id = `berth-spectest-${process.pid}-${++n}`;
  const spec = await buildOciSpec({
    container: makeRecord({ id, path: '/bin/sh', args: ['-c', script], config, hostConfig }),
    rootfsPath: rootfs.dir,
    defaultCgroupParent: CGROUP_PARENT,
    ...extra,
  });
  const bundle = path.join(work.dir, id);
  const state = path.join(work.dir, 'state');
  mkdirSync(bundle, { recursive: true });
  writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(spec));
  try {
    const { stdout } = await run(RUNC!, ['--root', state, 'run', '--bundle', bundle, id], { timeout: 20_000 });
    return stdout;
  } finally {
    try {
      execFileSync(RUNC!, ['--root', state, 'delete', '--force', id], { stdio: 'ignore' });
    } catch {
      // already gone: `runc run` deletes the container when its process exits
    }
  }
}

describe.skipIf(skip !== null)(`built specs run with runc${skip ? ` (skipped: ${skip})` : ''}`, () => {
  it('default: root, dockerd\'s 14 caps, hostname, env, cwd, masked /proc/kcore, 64 MiB /dev/shm', async () => {
    const out = await runIn(
      'id; grep CapEff /proc/self/status; hostname; echo HN=$HOSTNAME; pwd; wc -c < /proc/kcore; grep " /dev/shm " /proc/mounts; cat /proc/sys/net/ipv4/ip_unprivileged_port_start',
      { Hostname: 'specbox', WorkingDir: '/tmp' },
    );
    expect(out).toContain('uid=0(root) gid=0(root)');
    expect(out).toContain('CapEff:\t00000000a80425fb');
    expect(out).toMatch(/^specbox$/m);
    expect(out).toContain('HN=specbox');
    expect(out).toMatch(/^\/tmp$/m);
    expect(out).toMatch(/^0$/m);
    expect(out).toMatch(/\/dev\/shm tmpfs [^ ]*size=65536k/);
  });

  it('User with groups from the rootfs and GroupAdd; a non-root user has no effective caps', async () => {
    const out = await runIn('id; grep CapEff /proc/self/status', { User: 'alice' }, { GroupAdd: ['video'] });
    expect(out).toMatch(/uid=1000\(alice\) gid=1000\(alice\)/);
    for (const g of ['29(audio)', '100(users)', '44(video)']) expect(out).toContain(g);
    expect(out).toContain('CapEff:\t0000000000000000');
  });

  it('CapDrop ALL + CapAdd KILL, no-new-privileges, ulimits, sysctls', async () => {
    const out = await runIn(
      'grep -E "CapEff|CapBnd|NoNewPrivs" /proc/self/status; ulimit -n; cat /proc/sys/kernel/shmmax',
      {},
      { CapDrop: ['ALL'], CapAdd: ['kill'], SecurityOpt: ['no-new-privileges'], Ulimits: [{ Name: 'nofile', Soft: 1000, Hard: 2000 }], Sysctls: { 'kernel.shmmax': '1000000' } },
    );
    expect(out).toContain('CapEff:\t0000000000000020');
    expect(out).toContain('CapBnd:\t0000000000000020');
    expect(out).toContain('NoNewPrivs:\t1');
    expect(out).toMatch(/^1000$/m);
    expect(out).toMatch(/^1000000$/m);
  });

  it('ReadonlyRootfs with a Tmpfs, a read-only bind, a device', async () => {
    const src = path.join(work.dir, 'bindsrc');
    mkdirSync(src, { recursive: true });
    writeFileSync(path.join(src, 'hello'), 'from the host\n');
    const out = await runIn(
      'touch /x 2>/dev/null && echo ROOT-RW || echo ROOT-RO; touch /run/x && echo RUN-RW; cat /data/hello; touch /data/y 2>/dev/null && echo BIND-RW || echo BIND-RO; echo hi > /dev/mynull && echo DEV-OK',
      {},
      {
        ReadonlyRootfs: true,
        Tmpfs: { '/run': 'size=1m' },
        Binds: [`${src}:/data:ro`],
        Devices: [{ PathOnHost: '/dev/null', PathInContainer: '/dev/mynull', CgroupPermissions: 'rwm' }],
      },
    );
    expect(out.split('\n')).toEqual(expect.arrayContaining(['ROOT-RO', 'RUN-RW', 'from the host', 'BIND-RO', 'DEV-OK']));
  });

  it('host PID namespace sees the host\'s processes; a private one only its own', async () => {
    const own = await runIn('ls /proc | grep -cE "^[0-9]+$"');
    expect(Number(own.trim())).toBeLessThanOrEqual(3); // sh, ls, grep
    const host = await runIn('ls /proc | grep -cE "^[0-9]+$"', {}, { PidMode: 'host' });
    expect(Number(host.trim())).toBeGreaterThan(10);
  });
});
