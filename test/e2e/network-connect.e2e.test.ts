/**
 * `docker network connect`/`disconnect` of a running container and `network` events, through
 * the real docker CLI against berthd (runc + conmon + Debian's CNI plugins):
 *  - a container on the default bridge connected to a user network gets eth1, a record of its
 *    new address in its /etc/hosts, the network's DNS server in its resolv.conf; a container
 *    already on that network resolves its name (nslookup against the network's DNS server)
 *    and reaches it (ping over the test's bridge); disconnect takes the interface, the record
 *    and the name away again, and puts back the resolv.conf it had before the connect;
 *  - `docker events --filter type=network` shows create, connect (at each start and at the
 *    connect), disconnect (at the disconnect and at each release) and destroy, with the network's
 *    ID, name, type and the container's ID, as dockerd logs them.
 * Traffic stays on the test's own bridges (benchmarking range 198.18.0.0/15, no NAT, no route
 * out); the bridges are removed and ip_forward put back as found, also on failure. Needs root,
 * runc, conmon and the CNI plugins, else skipped.
 */
import { describe, expect, it } from 'vitest';
import { TEST_IMAGE, berthdSkipReason, type Berthd } from './helpers/berthd.js';
import { cniSkipReason, testNetworks, useNetworkBerthd } from './helpers/network-host.js';

const skip = cniSkipReason(berthdSkipReason());

const nets = testNetworks('bc', ['d', 'u']);

describe.skipIf(skip)(`network connect/disconnect and network events through the docker CLI${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let d: Berthd;
  useNetworkBerthd((b) => (d = b), {
    nets,
    defaultBridge: nets.d,
    beforeCleanup: async (b) => {
      await b.docker(['rm', '-f', 'ncx-srv', 'ncx-cli']);
      await b.docker(['network', 'rm', 'ncx-user']);
    },
  });

  it('connect of a running container: eth1, /etc/hosts, DNS by name from the network; disconnect undoes them; the network events', async () => {
    const since = Math.floor(Date.now() / 1000) - 1;
    const created = await d.docker(['network', 'create', '--subnet', `${nets.u.net}.0/24`, '-o', `com.docker.network.bridge.name=${nets.u.bridge}`, 'ncx-user']);
    expect(created.code, JSON.stringify(created)).toBe(0);
    const netId = (await d.docker(['network', 'inspect', '-f', '{{.Id}}', 'ncx-user'])).stdout.trim();
    const bridgeId = (await d.docker(['network', 'inspect', '-f', '{{.Id}}', 'bridge'])).stdout.trim();
    expect((await d.docker(['run', '-d', '--name', 'ncx-srv', '--network', 'ncx-user', TEST_IMAGE, 'sleep', '300'])).code).toBe(0);
    const cli = await d.docker(['run', '-d', '--name', 'ncx-cli', '--hostname', 'clihost', TEST_IMAGE, 'sleep', '300']);
    expect(cli.code, JSON.stringify(cli)).toBe(0);
    const srvId = (await d.docker(['inspect', '-f', '{{.Id}}', 'ncx-srv'])).stdout.trim();
    const cliId = (await d.docker(['inspect', '-f', '{{.Id}}', 'ncx-cli'])).stdout.trim();

    const resolvBefore = (await d.docker(['exec', 'ncx-cli', 'cat', '/etc/resolv.conf'])).stdout;
    const con = await d.docker(['network', 'connect', '--alias', 'client', 'ncx-user', 'ncx-cli']);
    expect(con.code, JSON.stringify(con)).toBe(0);
    const ip = (await d.docker(['inspect', '-f', '{{(index .NetworkSettings.Networks "ncx-user").IPAddress}}', 'ncx-cli'])).stdout.trim();
    expect(ip).toMatch(new RegExp(`^${nets.u.net.replace(/\./g, '\\.')}\\.\\d+$`));
    const inside = await d.docker(['exec', 'ncx-cli', 'sh', '-c', 'ip -o -4 addr show eth1; cat /etc/hosts; cat /etc/resolv.conf']);
    expect(inside.code, JSON.stringify(inside)).toBe(0);
    expect(inside.stdout).toContain(`${ip}/24`);
    expect(inside.stdout).toContain(`${ip}\tclihost\n`);
    expect(inside.stdout).toContain(`nameserver ${nets.u.net}.1`);
    // the network's DNS server answers the connected container's names (static busybox: nslookup, then ping the address)
    for (const name of ['ncx-cli', 'client']) {
      const q = await d.docker(['exec', 'ncx-srv', 'sh', '-c', `nslookup ${name} | awk '/^Address: /{print $2}' | tail -1`]);
      expect(q.stdout.trim(), `${name}: ${JSON.stringify(q)}`).toBe(ip);
    }
    expect((await d.docker(['exec', 'ncx-srv', 'ping', '-c', '1', '-W', '3', ip])).code).toBe(0);
    // and the connected container resolves the network's others
    const back = await d.docker(['exec', 'ncx-cli', 'sh', '-c', "nslookup ncx-srv | awk '/^Address: /{print $2}' | tail -1"]);
    expect(back.stdout.trim()).toBe((await d.docker(['inspect', '-f', '{{(index .NetworkSettings.Networks "ncx-user").IPAddress}}', 'ncx-srv'])).stdout.trim());

    const dis = await d.docker(['network', 'disconnect', 'ncx-user', 'ncx-cli']);
    expect(dis.code, JSON.stringify(dis)).toBe(0);
    const after = await d.docker(['exec', 'ncx-cli', 'sh', '-c', 'cat /etc/hosts; ip -o link show eth1 || echo no-eth1']);
    // no user network left: resolv.conf has the directives it had before the connect again, and no comment of the network's
    const directives = (text: string) => text.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
    const resolvAfter = (await d.docker(['exec', 'ncx-cli', 'cat', '/etc/resolv.conf'])).stdout;
    expect(resolvAfter).not.toMatch(/^# (ExtServers|Option ndots)/m);
    expect(directives(resolvAfter)).toEqual(directives(resolvBefore));
    expect(after.stdout).not.toContain(ip);
    expect(after.stdout).toContain('no-eth1');
    const gone = await d.docker(['exec', 'ncx-srv', 'sh', '-c', "nslookup ncx-cli | awk '/^Address: /{print $2}' | tail -1"]);
    expect(gone.stdout.trim()).not.toBe(ip);

    await d.docker(['rm', '-f', 'ncx-srv', 'ncx-cli']);
    expect((await d.docker(['network', 'rm', 'ncx-user'])).code).toBe(0);
    const until = Math.floor(Date.now() / 1000) + 1;
    await new Promise((r) => setTimeout(r, 1100));
    const ev = await d.docker(['events', '--since', String(since), '--until', String(until), '--filter', 'type=network', '--format', '{{.Type}} {{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}} {{.Actor.Attributes.type}} {{.Actor.Attributes.container}}']);
    expect(ev.code, JSON.stringify(ev)).toBe(0);
    const lines = ev.stdout.split('\n').filter(Boolean);
    const of = (c: string) => lines.filter((l) => l.endsWith(` ${c}`) || l.includes(` ${c} `));
    expect(lines[0]).toBe(`network create ${netId} ncx-user bridge <no value>`);
    expect(lines.at(-1)).toBe(`network destroy ${netId} ncx-user bridge <no value>`);
    expect(of(srvId)).toEqual([`network connect ${netId} ncx-user bridge ${srvId}`, `network disconnect ${netId} ncx-user bridge ${srvId}`]);
    expect(of(cliId)).toEqual([
      `network connect ${bridgeId} bridge bridge ${cliId}`,
      `network connect ${netId} ncx-user bridge ${cliId}`,
      `network disconnect ${netId} ncx-user bridge ${cliId}`,
      `network disconnect ${bridgeId} bridge bridge ${cliId}`,
    ]);
    expect(lines).toHaveLength(8);
  }, 180_000);
});
