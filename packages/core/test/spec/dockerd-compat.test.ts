/**
 * berth's spec vs the config.json a real dockerd 20.10 wrote for the same Config/HostConfig
 * (fixtures/dockerd, see fixtures/README.md). Each normalization below is a deliberate
 * difference, with its reason; everything else must be equal.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorKind } from '../../src/errors.js';
import type { OciMount, OciSpec } from '../../src/oci.js';
import type { ContainerConfig, HostConfig } from '../../src/types.js';
import { buildOciSpec, OCI_VERSION } from '../../src/spec/index.js';
import { ociSchemaErrors } from '../../../testing/src/specs.js';
import { fixturesDir, makeRecord, tempDir, tempRootfs } from './helpers.js';

interface Fixture {
  name: string;
  request: ContainerConfig & { HostConfig?: HostConfig };
  inspect?: {
    ID: string;
    Path: string;
    Args: string[];
    Config: ContainerConfig;
    HostConfig: HostConfig;
    HostnamePath: string;
    HostsPath: string;
    ResolvConfPath: string;
  };
  spec?: OciSpec;
  error?: { phase: string; status: number; message: string };
}

const fixtures: Fixture[] = readdirSync(path.join(fixturesDir, 'dockerd'))
  .filter((f) => f.endsWith('.json'))
  .map((f) => JSON.parse(readFileSync(path.join(fixturesDir, 'dockerd', f), 'utf8')) as Fixture);

/** The temp dir the capture script used for bind sources (/tmp/refd-binds-XXXXXX). */
const BIND_DIR_RE = /\/tmp\/refd-binds-[A-Za-z0-9]{6}/g;

const isRoot = process.getuid?.() === 0;
let rootfs: { dir: string; cleanup: () => void };
let binds: { dir: string; cleanup: () => void };
let bindsShared = false;
let bound = false;

beforeAll(() => {
  rootfs = tempRootfs();
  binds = tempDir('berth-spectest-binds-');
  mkdirSync(path.join(binds.dir, 'a'));
  mkdirSync(path.join(binds.dir, 'b'));
  // rshared/rslave binds need a shared host mount, as with dockerd
  if (isRoot) {
    try {
      execFileSync('mount', ['--bind', binds.dir, binds.dir]);
      bound = true;
      execFileSync('mount', ['--make-rshared', binds.dir]);
      bindsShared = true;
    } catch {
      bindsShared = false;
    }
  }
});

afterAll(() => {
  if (bound) execFileSync('umount', ['-l', binds.dir]);
  binds?.cleanup();
  rootfs?.cleanup();
});

function rebase<T>(v: T): T {
  return JSON.parse(JSON.stringify(v).replace(BIND_DIR_RE, binds.dir)) as T;
}

function inputFor(fx: Fixture) {
  const ins = fx.inspect;
  const hostConfig = rebase(ins?.HostConfig ?? fx.request.HostConfig ?? {});
  const { HostConfig: _hc, Cmd, Entrypoint, ...config } = fx.request;
  void _hc;
  const argv = [...(Entrypoint ?? []), ...(Cmd ?? [])];
  const record = makeRecord({
    id: ins?.ID,
    path: ins?.Path ?? argv[0],
    args: ins?.Args ?? argv.slice(1),
    config: ins?.Config ?? (config as ContainerConfig),
    hostConfig,
  });
  return {
    container: record,
    rootfsPath: rootfs.dir,
    hostsPath: ins?.HostsPath,
    resolvConfPath: ins?.ResolvConfPath,
    hostnamePath: ins?.HostnamePath,
    // dockerd 20.10 knows the capabilities up to CAP_AUDIT_READ (37); this host's cgroup v1
    host: { capLastCap: 37, cgroupV2: false, cpuCount: 2 },
    initPath: '/usr/bin/docker-init',
    shmPath: fx.spec?.mounts?.find((m) => m.destination === '/dev/shm' && m.type === 'bind' && m.source !== '/dev/shm')?.source,
  };
}

function depth(m: OciMount): number {
  return (m.destination.match(/\//g) ?? []).length;
}

/** Mounts in order up to the last default, then the rest by (depth, destination): dockerd orders same-depth user mounts by Go map iteration. */
function orderMounts(mounts: OciMount[] = []): OciMount[] {
  const defaults = new Set(['/proc', '/dev', '/dev/pts', '/sys', '/sys/fs/cgroup', '/dev/mqueue', '/sbin/docker-init']);
  let cut = 0;
  mounts.forEach((m, i) => {
    if (defaults.has(m.destination) || (m.destination === '/dev/shm' && m.source === 'shm')) cut = i + 1;
  });
  const rest = mounts.slice(cut).sort((a, b) => depth(a) - depth(b) || (a.destination < b.destination ? -1 : 1));
  return [...mounts.slice(0, cut), ...rest];
}

function normalize(spec: OciSpec, side: 'dockerd' | 'berth', fx: Fixture): OciSpec {
  const s = JSON.parse(JSON.stringify(spec)) as OciSpec;
  const hc = fx.inspect?.HostConfig ?? fx.request.HostConfig ?? {};
  // spec version: berth writes its own
  s.ociVersion = OCI_VERSION;
  // seccomp, AppArmor and OCI hooks (dockerd's libnetwork-setkey prestart hook) are plugins' job
  delete s.linux?.seccomp;
  delete s.process?.apparmorProfile;
  delete s.hooks;
  s.mounts = orderMounts(s.mounts);
  if (side === 'dockerd') {
    s.root = { ...s.root!, path: rootfs.dir };
    // dockerd's cgroupfs parent is /docker, berth's is /berth
    if (s.linux?.cgroupsPath?.startsWith('/docker/')) s.linux.cgroupsPath = `/berth/${s.linux.cgroupsPath.slice(8)}`;
    // dockerd joins the host netns by path (exec-root/netns/default); berth leaves the namespace out
    if (s.linux?.namespaces) s.linux.namespaces = s.linux.namespaces.filter((n) => !(n.type === 'network' && n.path?.endsWith('/netns/default')));
    // this host has no blkio weight support: dockerd dropped BlkioWeight with a warning; berth passes it on
    // dockerd writes rootfsPropagation "rslave" for slave binds: runc's default for the rootfs, and not
    // a value the spec's schema allows, so berth omits it
    if (s.linux?.rootfsPropagation === 'rslave') delete s.linux.rootfsPropagation;
    if (s.linux?.resources?.blockIO) s.linux.resources.blockIO = { weight: hc.BlkioWeight ?? 0 };
    // dockerd 20.10 writes path "" for a device whose PathInContainer is empty; berth uses PathOnHost
    for (const d of s.linux?.devices ?? []) {
      if (d.path === '') d.path = (hc.Devices ?? []).find((m) => !m.PathInContainer)?.PathOnHost ?? '';
    }
  }
  // host devices of a privileged container depend on the machine (checked in devices.test.ts)
  if (hc.Privileged) delete s.linux?.devices;
  return s;
}

/** Error cases where berth deliberately answers differently from dockerd 20.10. */
const DIFFERENT_ERRORS: Record<string, { message: string; reason: string }> = {
  'err-ulimit-soft-gt-hard': {
    message: 'ulimit soft limit must be less than or equal to hard limit: 2048 > 1024',
    reason: 'dockerd passes it to runc, which fails at start with "error setting rlimit type 7"; berth refuses it before anything runs',
  },
  'err-blkio-weight': {
    message: 'Range of blkio weight is from 10 to 1000',
    reason: 'dockerd only checks (and otherwise drops) BlkioWeight when the host supports it; berth always checks',
  },
};

/**
 * runc refused these on the capture host only because its bounding set lacks
 * CAP_SYS_RESOURCE (a VM limit): dockerd built the spec, which is what is compared.
 */
const hostLimited = (f: Fixture) => f.spec !== undefined && f.error?.message.includes('unable to apply caps: operation not permitted') === true;
const successes = fixtures.filter((f) => f.spec && (!f.error || hostLimited(f)));
const failures = fixtures.filter((f) => f.error && !hostLimited(f));

describe('berth spec = dockerd 20.10 spec (fixtures/dockerd)', () => {
  it('has the fixtures', () => {
    expect(successes.length).toBeGreaterThanOrEqual(30);
    expect(failures.length).toBeGreaterThanOrEqual(25);
  });

  for (const fx of successes) {
    it(fx.name, async (ctx) => {
      const needsShared = JSON.stringify(fx.request).match(/rshared|rslave/);
      if (needsShared && !bindsShared) ctx.skip(isRoot ? 'a shared bind mount (rshared/rslave) could not be made here' : 'rshared/rslave binds need root (a shared mount)');
      const devs = (fx.request.HostConfig?.Devices ?? []).map((d) => d.PathOnHost);
      const missing = devs.find((d) => !existsSync(d));
      if (missing) ctx.skip(`the device ${missing} is not on this machine`);
      const spec = await buildOciSpec(inputFor(fx));
      expect(ociSchemaErrors('oci-runtime-spec/config-schema.json', spec)).toBe('');
      expect(normalize(spec, 'berth', fx)).toEqual(normalize(rebase(fx.spec!), 'dockerd', fx));
    });
  }

  for (const fx of failures) {
    it(`${fx.name}: ${fx.error!.message}`, async () => {
      const err = await buildOciSpec(inputFor(fx)).then(
        () => null,
        (e: unknown) => e as Error,
      );
      expect(err, 'berth must refuse what dockerd refused').toBeInstanceOf(Error);
      expect(errorKind(err)).toBe('InvalidParameter');
      const expected = rebase(fx.error!.message);
      const different = DIFFERENT_ERRORS[fx.name];
      if (different) expect(err!.message).toBe(different.message);
      // runc's refusals reach the client wrapped ("failed to create shim task: … runc create failed: <msg>: unknown")
      else if (expected.includes('runc create failed')) expect(expected).toContain(err!.message);
      else expect(err!.message).toBe(expected);
    });
  }
});
