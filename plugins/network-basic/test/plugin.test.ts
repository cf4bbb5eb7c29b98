import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { errorKind, type HostConfig, type OciMount } from '@berth/core';
import { createTestEngine, type TestEngine } from '@berth/testing';
import { networkBasicPlugin, type NetworkBasicConfig } from '../src/index.js';

const DEFAULT_HOSTS =
  '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n';

let t: TestEngine | undefined;

afterEach(async () => {
  await t?.dispose();
  t = undefined;
});

/** An engine with only this plugin, reading host files from the test's temp dir. */
async function setup(host: { resolv?: string; hosts?: string; systemdResolv?: string } = {}, config: NetworkBasicConfig = {}): Promise<TestEngine> {
  t = await createTestEngine({ plugins: [] });
  const hostDir = join(t.dir, 'host');
  await mkdir(hostDir, { recursive: true });
  const files: NetworkBasicConfig = {
    hostsFile: join(hostDir, 'hosts'),
    resolvConfFile: join(hostDir, 'resolv.conf'),
    systemdResolvConfFile: join(hostDir, 'systemd-resolv.conf'),
    hostname: 'the-host',
    ...config,
  };
  if (host.resolv !== undefined) await writeFile(files.resolvConfFile!, host.resolv);
  if (host.hosts !== undefined) await writeFile(files.hostsFile!, host.hosts);
  if (host.systemdResolv !== undefined) await writeFile(files.systemdResolvConfFile!, host.systemdResolv);
  const engine = await t.restart({ plugins: [networkBasicPlugin({ config: files })] });
  void engine;
  return t;
}

async function run(te: TestEngine, hc: HostConfig = {}, cfg: { Hostname?: string } = {}) {
  const id = await te.createContainer({ HostConfig: hc, Config: { Cmd: ['/bin/true'], ...cfg } });
  await te.engine.containers.start(id);
  const rec = te.engine.containers.inspect(id);
  const spec = te.fake.containers.get(id)?.spec;
  return { id, rec, spec };
}

function mountAt(mounts: OciMount[] | undefined, dest: string): OciMount | undefined {
  return mounts?.find((m) => m.destination === dest);
}

describe('network-basic plugin', () => {
  it('writes hostname, hosts and resolv.conf for --network none, records and mounts them', async () => {
    const te = await setup({ resolv: '# host file\nnameserver 10.9.9.9\nsearch example.org\noptions ndots:2\n' });
    const { id, rec, spec } = await run(te, { NetworkMode: 'none' });
    const dir = join(te.dataRoot, 'containers', id);
    expect(rec.HostnamePath).toBe(join(dir, 'hostname'));
    expect(rec.HostsPath).toBe(join(dir, 'hosts'));
    expect(rec.ResolvConfPath).toBe(join(dir, 'resolv.conf'));
    expect(await readFile(rec.HostnamePath, 'utf8')).toBe(`${id.slice(0, 12)}\n`);
    expect(await readFile(rec.HostsPath, 'utf8')).toBe(DEFAULT_HOSTS);
    expect(await readFile(rec.ResolvConfPath, 'utf8')).toBe('# host file\nsearch example.org\nnameserver 10.9.9.9\noptions ndots:2\n');
    expect((await stat(rec.HostsPath)).mode & 0o777).toBe(0o644);
    for (const [dest, src] of [
      ['/etc/hostname', rec.HostnamePath],
      ['/etc/hosts', rec.HostsPath],
      ['/etc/resolv.conf', rec.ResolvConfPath],
    ]) {
      const m = mountAt(spec?.mounts, dest);
      expect(m, dest).toBeDefined();
      expect(m!.source).toBe(src);
      expect(m!.type).toBe('bind');
      expect(m!.options).not.toContain('ro');
    }
    // no temp files left behind
    const { readdir } = await import('node:fs/promises');
    expect((await readdir(dir)).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('uses Config.Hostname, ExtraHosts (name:ip and name=ip, bracketed IPv6) and Dns/DnsSearch/DnsOptions', async () => {
    const te = await setup({ resolv: 'nameserver 10.9.9.9\nsearch host.example\noptions rotate\n' });
    const { rec } = await run(
      te,
      {
        NetworkMode: 'default',
        ExtraHosts: ['a:10.1.2.3', 'b=10.4.5.6', 'c:[2001:db8::1]', 'd:2001:db8::2'],
        Dns: ['10.0.0.53', '10.0.0.54'],
        DnsSearch: ['x.example', 'y.example'],
        DnsOptions: ['ndots:5', 'timeout:1'],
      },
      { Hostname: 'box' },
    );
    expect(await readFile(rec.HostnamePath, 'utf8')).toBe('box\n');
    expect(await readFile(rec.HostsPath, 'utf8')).toBe(`${DEFAULT_HOSTS}10.1.2.3\ta\n10.4.5.6\tb\n2001:db8::1\tc\n2001:db8::2\td\n`);
    expect(await readFile(rec.ResolvConfPath, 'utf8')).toBe(
      'search x.example y.example\nnameserver 10.0.0.53\nnameserver 10.0.0.54\noptions ndots:5 timeout:1\n',
    );
  });

  it('drops loopback (and IPv6) host nameservers in a namespace of its own; falls back to 8.8.8.8 and 8.8.4.4', async () => {
    const te = await setup({ resolv: 'nameserver 127.0.0.53\nnameserver ::1\nnameserver 10.2.2.2\nnameserver fd00::1\n' });
    const a = await run(te, { NetworkMode: 'none' });
    expect(await readFile(a.rec.ResolvConfPath, 'utf8')).toBe('nameserver 10.2.2.2\n');

    await writeFile(join(te.dir, 'host', 'resolv.conf'), 'nameserver 127.0.0.11\nsearch s.example\n');
    const b = await run(te, { NetworkMode: 'bridge' });
    expect(await readFile(b.rec.ResolvConfPath, 'utf8')).toBe('search s.example\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n');

    // DnsSearch ["."]: no search line at all
    const c = await run(te, { NetworkMode: 'none', DnsSearch: ['.'] });
    expect(await readFile(c.rec.ResolvConfPath, 'utf8')).toBe('nameserver 8.8.8.8\nnameserver 8.8.4.4\n');
  });

  it('uses systemd-resolved upstream file when the host resolv.conf only names the stub', async () => {
    const te = await setup({ resolv: 'nameserver 127.0.0.53\noptions edns0\n', systemdResolv: 'nameserver 192.0.2.7\n' });
    const { rec } = await run(te, { NetworkMode: 'none' });
    expect(await readFile(rec.ResolvConfPath, 'utf8')).toBe('nameserver 192.0.2.7\n');
  });

  it('no host resolv.conf at all: the defaults', async () => {
    const te = await setup({});
    const { rec } = await run(te, { NetworkMode: 'none' });
    expect(await readFile(rec.ResolvConfPath, 'utf8')).toBe('nameserver 8.8.8.8\nnameserver 8.8.4.4\n');
  });

  it('host mode: the host hosts file (plus ExtraHosts), host resolv.conf with loopback kept, the host name', async () => {
    const hosts = '127.0.0.1 localhost\n192.0.2.10 the-host\n';
    const te = await setup({ resolv: 'nameserver 127.0.0.53\nsearch lan\n', hosts });
    const a = await run(te, { NetworkMode: 'host' });
    expect(await readFile(a.rec.HostsPath, 'utf8')).toBe(hosts);
    expect(await readFile(a.rec.ResolvConfPath, 'utf8')).toBe('search lan\nnameserver 127.0.0.53\n');
    expect(await readFile(a.rec.HostnamePath, 'utf8')).toBe('the-host\n');
    // the container's own UTS namespace is named as the host (dockerd sets Config.Hostname at create)
    expect(a.rec.Config.Hostname).toBe('the-host');
    expect(a.spec?.hostname).toBe('the-host');
    expect(a.rec.HostsPath).toBe(join(te.dataRoot, 'containers', a.id, 'hosts'));

    const b = await run(te, { NetworkMode: 'host', ExtraHosts: ['db:10.3.3.3'], Dns: ['10.0.0.1'] }, { Hostname: 'named' });
    expect(await readFile(b.rec.HostsPath, 'utf8')).toBe(`${hosts}10.3.3.3\tdb\n`);
    expect(await readFile(b.rec.ResolvConfPath, 'utf8')).toBe('search lan\nnameserver 10.0.0.1\n');
    expect(await readFile(b.rec.HostnamePath, 'utf8')).toBe('named\n');
    expect(b.spec?.hostname).toBe('named');
  });

  it('container:<name> mode shares the other container’s files', async () => {
    const te = await setup({ resolv: 'nameserver 10.9.9.9\n' });
    te.fake.script('*', {}); // runs until killed
    const first = await te.createContainer({ name: 'first', HostConfig: { NetworkMode: 'none' } });
    await te.engine.containers.start(first);
    const a = te.engine.containers.inspect(first);
    const second = await te.createContainer({ HostConfig: { NetworkMode: 'container:first' } });
    await te.engine.containers.start(second);
    const b = te.engine.containers.inspect(second);
    expect(b.HostsPath).toBe(a.HostsPath);
    expect(b.ResolvConfPath).toBe(a.ResolvConfPath);
    expect(b.HostnamePath).toBe(a.HostnamePath);
    expect(mountAt(te.fake.containers.get(second)?.spec.mounts, '/etc/hosts')?.source).toBe(a.HostsPath);
    expect(await stat(join(te.dataRoot, 'containers', second, 'hosts')).catch(() => null)).toBeNull();
  });

  it('container:<ID prefix> mode finds the container through the engine (after a daemon restart too)', async () => {
    const te = await setup({ resolv: 'nameserver 10.9.9.9\n' });
    te.fake.script('*', {});
    const first = await te.createContainer({ name: 'first', HostConfig: { NetworkMode: 'none' } });
    await te.engine.containers.start(first);
    const a = te.engine.containers.inspect(first);
    await te.restart({ plugins: [networkBasicPlugin({ config: { resolvConfFile: join(te.dir, 'host', 'resolv.conf'), hostsFile: join(te.dir, 'host', 'hosts') } })] });
    const second = await te.createContainer({ HostConfig: { NetworkMode: `container:${first.slice(0, 10)}` } });
    await te.engine.containers.start(second);
    expect(te.engine.containers.inspect(second).HostsPath).toBe(a.HostsPath);
  });

  it('one plugin value in two engines: container:<name> takes the files of its own engine\'s container', async () => {
    // The plugin keeps no per-engine state of its own: it asks each engine (ctx.containers).
    const plugin = networkBasicPlugin({ config: { resolvConfFile: '/nonexistent-berth-test/resolv.conf', hostsFile: '/nonexistent-berth-test/hosts' } });
    const engines: TestEngine[] = [];
    try {
      for (let i = 0; i < 2; i++) {
        const te = await createTestEngine({ plugins: [plugin] });
        engines.push(te);
        te.fake.script('*', {});
        const first = await te.createContainer({ name: 'first', HostConfig: { NetworkMode: 'none' } });
        await te.engine.containers.start(first);
      }
      const b = engines[1]!;
      const second = await b.createContainer({ HostConfig: { NetworkMode: 'container:first' } });
      await b.engine.containers.start(second);
      expect(b.engine.containers.inspect(second).HostsPath).toBe(b.engine.containers.inspect('first').HostsPath);
      expect(b.engine.containers.inspect(second).HostsPath.startsWith(b.dataRoot)).toBe(true);
    } finally {
      for (const te of engines) await te.dispose();
    }
  });

  it('a user-defined network mode gets files too, with a record per address a networking plugin recorded', async () => {
    const te = await setup({ resolv: 'nameserver 10.9.9.9\n' });
    // what network-cni's networking tap (an earlier stage) leaves in the record
    te.engine.hooks.networking.tapPromise({ name: 'fake-cni', stage: -400 }, async (c) => {
      c.container.NetworkSettings.Networks = { mynet: { IPAddress: '198.18.0.5', IPPrefixLen: 24 } };
      c.hostGatewayIP = '198.18.1.1';
    });
    const { id, rec, spec } = await run(te, { NetworkMode: 'mynet', ExtraHosts: ['gw:host-gateway'] });
    expect(rec.HostsPath).toBe(join(te.dataRoot, 'containers', id, 'hosts'));
    expect(mountAt(spec?.mounts, '/etc/hosts')?.source).toBe(rec.HostsPath);
    expect(await readFile(rec.HostsPath, 'utf8')).toBe(`${DEFAULT_HOSTS}198.18.1.1\tgw\n198.18.0.5\t${id.slice(0, 12)}\n`);
    expect(await readFile(rec.ResolvConfPath, 'utf8')).toBe('nameserver 10.9.9.9\n');
  });

  it('refuses bad ExtraHosts at create with dockerd’s wording (400)', async () => {
    const te = await setup({ resolv: '' });
    const cases: Array<[string, string]> = [
      ['nohost', 'bad format for add-host: "nohost"'],
      [':10.0.0.1', 'bad format for add-host: ":10.0.0.1"'],
      ['h:10.0.0', 'invalid IP address in add-host: "10.0.0"'],
      ['h=::::1', 'invalid IP address in add-host: "::::1"'],
    ];
    expect.assertions(cases.length * 2 + 1);
    for (const [entry, message] of cases) {
      const err = await te.createContainer({ HostConfig: { ExtraHosts: ['ok:1.2.3.4', entry] } }).catch((e: unknown) => e);
      expect(errorKind(err)).toBe('InvalidParameter');
      expect(String((err as Error).message)).toContain(message);
    }
    expect(te.engine.containers.list()).toEqual([]);
  });

  it('host-gateway: accepted at create, refused at start without a bridge network (dockerd resolves it at start)', async () => {
    const te = await setup({ resolv: '' });
    const id = await te.createContainer({ HostConfig: { NetworkMode: 'none', ExtraHosts: ['h:host-gateway'] }, Config: { Cmd: ['/bin/true'] } });
    const err = await te.engine.containers.start(id).catch((e: unknown) => e);
    expect(errorKind(err)).toBe('InvalidParameter');
    expect(String((err as Error).message)).toContain('unable to derive the IP value for host-gateway');
  });

  it('rewrites the files on each start (Dns picked up from the current host file)', async () => {
    const te = await setup({ resolv: 'nameserver 10.1.1.1\n' });
    const { id, rec } = await run(te, { NetworkMode: 'none' });
    expect(await readFile(rec.ResolvConfPath, 'utf8')).toBe('nameserver 10.1.1.1\n');
    await writeFile(join(te.dir, 'host', 'resolv.conf'), 'nameserver 10.1.1.2\n');
    await te.engine.containers.stop(id, { timeout: 0 });
    expect(te.engine.containers.inspect(id).State.Running).toBe(false);
    await te.engine.containers.start(id);
    const again = te.engine.containers.inspect(id);
    expect(await readFile(again.ResolvConfPath, 'utf8')).toBe('nameserver 10.1.1.2\n');
  });

  it('legacy links: a hosts record per linked container with an address (alias, hostname, name), after ExtraHosts', async () => {
    const te = await setup({ resolv: 'nameserver 10.9.9.9\n' });
    const db = await te.createContainer({ name: 'db', Config: { Cmd: ['/bin/db'], Hostname: 'dbhost' } });
    await te.engine.containers.start(db);
    const cache = await te.createContainer({ name: 'cache', Config: { Cmd: ['/bin/cache'] } });
    await te.engine.containers.start(cache);
    // berth gives containers no address yet (no bridge): set the one a bridge would have given
    te.engine.containers.liveRecord(db).NetworkSettings.IPAddress = '172.17.0.2';
    const id = await te.createContainer({ name: 'web', Config: { Cmd: ['/bin/web'] }, HostConfig: { Links: ['db:data', 'db', 'cache'], ExtraHosts: ['x:10.1.1.1'] } });
    await te.engine.containers.start(id);
    const hosts = await readFile(te.engine.containers.inspect(id).HostsPath, 'utf8');
    // "cache" has no address: no record (dockerd writes none either)
    expect(hosts).toBe(`${DEFAULT_HOSTS}10.1.1.1\tx\n172.17.0.2\tdata dbhost db\n172.17.0.2\tdb dbhost\n`);
  });
});
