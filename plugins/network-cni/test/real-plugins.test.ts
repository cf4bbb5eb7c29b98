/**
 * The CNI runner with the reference plugins (Debian's containernetworking-plugins: loopback,
 * bridge, host-local) in a network namespace this test makes: ADD gives the namespace `lo` up
 * and an `eth0` with an address from the test's own subnet on the test's own bridge, the host
 * reaches it over that bridge (ping to the address; nothing leaves the machine: no ipMasq, no
 * route out; ip_forward is put back as found), DEL removes the veth and frees the address, and the namespace file goes away.
 * A namespace createNetns makes (or bindNetns keeps) has lo up without any plugin: 127.0.0.1 answers.
 * Root and the plugins are needed; otherwise skipped with the reason. Cleans up on failure.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CniRunner, bindNetns, createNetns, isNamespaceFile, removeNetns, type CniConfList } from '../src/index.js';

const CNI_BIN = process.env.BERTH_CNI_PATH ?? '/usr/lib/cni';
function skipReason(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, bridges)';
  for (const p of ['loopback', 'bridge', 'host-local']) if (!existsSync(join(CNI_BIN, p))) return `the CNI plugin ${p} is not in ${CNI_BIN} (apt-get install containernetworking-plugins, or set BERTH_CNI_PATH)`;
  for (const b of ['unshare', 'nsenter', 'ip', 'busybox']) {
    try {
      execFileSync('sh', ['-c', `command -v ${b}`], { stdio: 'ignore' });
    } catch {
      return `${b} is not installed`;
    }
  }
  return null;
}
const skip = skipReason();
const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8' });
const inNs = (ns: string, ...args: string[]): string => execFileSync('nsenter', [`--net=${ns}`, ...args], { encoding: 'utf8' });

describe.skipIf(skip)(`the reference CNI plugins${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let dir: string;
  const FORWARD = '/proc/sys/net/ipv4/ip_forward';
  let forward: string; // the bridge plugin turns forwarding on for a gateway bridge: put it back
  const bridge = `bcni${process.pid % 100000}`;
  // a subnet from the benchmarking range (RFC 2544), unlikely to be routed anywhere
  const subnet = `198.18.${process.pid % 250}.0/24`;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'berth-cni-real-'));
    forward = readFileSync(FORWARD, 'utf8');
  });
  afterAll(async () => {
    for (const f of existsSync(join(dir, 'netns')) ? readdirSync(join(dir, 'netns')) : []) await removeNetns(join(dir, 'netns', f)).catch(() => {});
    try {
      ip('link', 'del', bridge);
    } catch {
      // not made, or gone
    }
    rmSync(dir, { recursive: true, force: true });
    if (forward !== undefined) writeFileSync(FORWARD, forward);
  });

  it('ADD puts lo and eth0 in the namespace on the test bridge; the host reaches it; DEL removes the veth and frees the address', async () => {
    const ns = join(dir, 'netns', 'c1');
    await createNetns(ns);
    expect(await isNamespaceFile(ns)).toBe(true);
    const list: CniConfList = {
      cniVersion: '1.0.0',
      name: 'berth-test',
      plugins: [
        { type: 'bridge', bridge, isGateway: true, ipMasq: false, ipam: { type: 'host-local', ranges: [[{ subnet }]], dataDir: join(dir, 'ipam') } },
      ],
    };
    const lo: CniConfList = { cniVersion: '1.0.0', name: 'berth-lo', plugins: [{ type: 'loopback' }] };
    const r = new CniRunner({ binDirs: [CNI_BIN], cacheDir: join(dir, 'cache') });
    await r.add(lo, { containerId: 'c1', netns: ns, ifName: 'lo' });
    const result = await r.add(list, { containerId: 'c1', netns: ns, ifName: 'eth0' });
    const addr = result.ips?.[0]?.address.split('/')[0];
    expect(addr).toMatch(/^198\.18\.\d+\.\d+$/);
    expect(inNs(ns, 'ip', '-o', '-4', 'addr', 'show', 'eth0')).toContain(addr);
    expect(inNs(ns, 'ip', '-o', 'link', 'show', 'lo')).toMatch(/state UNKNOWN|UP/);
    execFileSync('busybox', ['ping', '-c', '1', '-W', '2', addr!], { stdio: 'ignore' }); // host → container over the bridge
    const hostVeth = result.interfaces?.find((i) => !i.sandbox && i.name !== bridge)?.name;
    expect(hostVeth).toBeTruthy();
    expect(ip('-o', 'link', 'show', 'master', bridge)).toContain(hostVeth);
    expect(readdirSync(join(dir, 'ipam', 'berth-test'))).toContain(addr);

    await r.del({ containerId: 'c1', ifName: 'eth0' });
    await r.del({ containerId: 'c1', ifName: 'lo' });
    expect(ip('-o', 'link', 'show', 'master', bridge)).not.toContain(hostVeth);
    expect(readdirSync(join(dir, 'ipam', 'berth-test'))).not.toContain(addr);
    await r.del({ containerId: 'c1', ifName: 'eth0' }); // idempotent
    await removeNetns(ns);
    expect(existsSync(ns)).toBe(false);
    expect(await isNamespaceFile(ns)).toBe(false);
    await removeNetns(ns); // idempotent
  });

  it('createNetns and bindNetns give the namespace lo up (127.0.0.1 answers) with no CNI plugin run', async () => {
    const made = join(dir, 'netns', 'lo1');
    await createNetns(made);
    expect(inNs(made, 'ip', '-o', 'link', 'show', 'lo')).toMatch(/<LOOPBACK,UP,LOWER_UP>/);
    expect(inNs(made, 'ip', '-o', '-4', 'addr', 'show', 'lo')).toContain('127.0.0.1/8');
    execFileSync('nsenter', [`--net=${made}`, 'busybox', 'ping', '-c', '1', '-W', '2', '127.0.0.1'], { stdio: 'ignore' });
    await removeNetns(made);
    // a namespace a process made (lo down, as a runtime that does not bring it up leaves it), kept by bind
    const holder = spawn('unshare', ['--net', 'sleep', '60'], { stdio: 'ignore' });
    try {
      const src = `/proc/${holder.pid}/ns/net`;
      const self = execFileSync('readlink', ['/proc/self/ns/net'], { encoding: 'utf8' }).trim();
      for (let i = 0; i < 500 && execFileSync('readlink', [src], { encoding: 'utf8' }).trim() === self; i++) await new Promise((r) => setTimeout(r, 10));
      const kept = join(dir, 'netns', 'lo2');
      await bindNetns(kept, src);
      expect(inNs(kept, 'ip', '-o', 'link', 'show', 'lo')).toMatch(/<LOOPBACK,UP,LOWER_UP>/);
      await removeNetns(kept);
      expect(existsSync(kept)).toBe(false);
    } finally {
      holder.kill('SIGKILL');
    }
  });
});
