/**
 * Name resolution across all of a container's user networks, through the real docker CLI
 * against berthd (runc + conmon + Debian's CNI plugins), as dockerd's embedded DNS answers:
 *  - nm-a on nm-net1 and nm-net2, nm-b on nm-net1, nm-c on nm-net2: nm-a resolves nm-b (its
 *    nm-net1 address) and nm-c (its nm-net2 address) through the one server its resolv.conf
 *    names (nm-net1's gateway);
 *  - `docker network disconnect nm-net1 nm-a` (running): nm-a's resolv.conf names nm-net2's
 *    server now (in place) and nm-a still resolves nm-c.
 * That nm-b does not resolve nm-c (isolation) is proven by plugins/network-cni's unit test
 * (dns-multi.test.ts): asked here, the miss would be relayed to the host's resolvers, off the
 * machine. Only names the networks' servers answer are asked.
 * Traffic stays on the test's own bridges (benchmarking range 198.18.0.0/15, no NAT, no route
 * out); the bridges are removed and ip_forward put back as found, also on failure. Needs root,
 * runc, conmon and the CNI plugins, else skipped.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, berthdSkipReason, removeTestImageTarball, startBerthd, type Berthd } from './helpers/berthd.js';
import { cniSkipReason, type HostNetworkState, saveHostNetworkState } from './helpers/network-host.js';

function skipReason(): string | null {
  const s = cniSkipReason(berthdSkipReason());
  if (s) return s;
  return null;
}
const skip = skipReason();

const tag = process.pid % 100000;
const DEFAULT_BRIDGE = `bmd${tag}`;
const BRIDGE1 = `bm1${tag}`;
const BRIDGE2 = `bm2${tag}`;
const third = (n: number) => (tag * 11 + n) % 250;
const DEFAULT_NET = `198.18.${third(5)}`;
const NET1 = `198.19.${third(6)}`;
const NET2 = `198.19.${third(7)}`;

describe.skipIf(skip)(`DNS across a container's networks through the docker CLI${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let d: Berthd;
  let host: HostNetworkState | undefined;
  beforeAll(async () => {
    host = saveHostNetworkState();
    d = await startBerthd({ args: ['--bridge', DEFAULT_BRIDGE, '--bip', `${DEFAULT_NET}.1/24`] });
    await d.loadTestImage();
  }, 120_000);
  afterAll(async () => {
    await d?.docker(['rm', '-f', 'nm-a', 'nm-b', 'nm-c']).catch(() => {});
    await d?.docker(['network', 'rm', 'nm-net1', 'nm-net2']).catch(() => {});
    await d?.cleanup();
    host?.restore([DEFAULT_BRIDGE, BRIDGE1, BRIDGE2]);
    removeTestImageTarball();
  }, 120_000);

  const ok = async (args: string[]) => {
    const r = await d.docker(args);
    expect(r.code, `${args.join(' ')}: ${JSON.stringify(r)}`).toBe(0);
    return r.stdout.trim();
  };
  const ipOn = (name: string, net: string) => ok(['inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, name]);
  /** What `nslookup name` inside `from` answers (its resolv.conf's server): the last address. */
  const lookup = (from: string, name: string) => ok(['exec', from, 'sh', '-c', `nslookup ${name} | awk '/^Address: /{print $2}' | tail -1`]);

  it('a container on two user networks resolves the names of both; after a disconnect its resolv.conf names the other server', async () => {
    await ok(['network', 'create', '--subnet', `${NET1}.0/24`, '-o', `com.docker.network.bridge.name=${BRIDGE1}`, 'nm-net1']);
    await ok(['network', 'create', '--subnet', `${NET2}.0/24`, '-o', `com.docker.network.bridge.name=${BRIDGE2}`, 'nm-net2']);
    await ok(['create', '--name', 'nm-a', '--network', 'nm-net1', TEST_IMAGE, 'sleep', '300']);
    await ok(['network', 'connect', 'nm-net2', 'nm-a']);
    await ok(['start', 'nm-a']);
    await ok(['run', '-d', '--name', 'nm-b', '--network', 'nm-net1', TEST_IMAGE, 'sleep', '300']);
    await ok(['run', '-d', '--name', 'nm-c', '--network', 'nm-net2', TEST_IMAGE, 'sleep', '300']);

    expect(await ok(['exec', 'nm-a', 'cat', '/etc/resolv.conf'])).toMatch(new RegExp(`^nameserver ${NET1.replace(/\./g, '\\.')}\\.1$`, 'm'));
    expect(await lookup('nm-a', 'nm-b')).toBe(await ipOn('nm-b', 'nm-net1'));
    expect(await lookup('nm-a', 'nm-c')).toBe(await ipOn('nm-c', 'nm-net2'));
    // and the others resolve nm-a at its address on the network they share with it
    expect(await lookup('nm-b', 'nm-a')).toBe(await ipOn('nm-a', 'nm-net1'));
    expect(await lookup('nm-c', 'nm-a')).toBe(await ipOn('nm-a', 'nm-net2'));

    await ok(['network', 'disconnect', 'nm-net1', 'nm-a']);
    const resolv = await ok(['exec', 'nm-a', 'cat', '/etc/resolv.conf']);
    expect(resolv).toMatch(new RegExp(`^nameserver ${NET2.replace(/\./g, '\\.')}\\.1$`, 'm'));
    expect(resolv).not.toContain(`${NET1}.1`);
    expect(await lookup('nm-a', 'nm-c')).toBe(await ipOn('nm-c', 'nm-net2'));
  }, 180_000);
});
