/**
 * The network-cni unit tests' harness: an engine (FakeRuntime) with the plugin, an in-process
 * fake of the CNI plugins (bridge with host-local-like allocation, loopback, tuning) and fake
 * namespaces (no root), network-basic writing the container files.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type HostConfig, type Plugin } from '@berth/core';
import { createTestEngine, type TestEngine } from '@berth/testing';
import { networkBasicPlugin } from '@berth/plugin-network-basic';
import { INetworkService, networkCniPlugin, type CniExec, type NetworkCniConfig, type NetworkService } from '../src/index.js';
import type { PublishingOptions } from '../src/publish.js';

let t: TestEngine | undefined;
/** Dispose the engine the last setup made (each test file's afterEach). */
export async function disposeEngine(): Promise<void> {
  await t?.dispose();
  t = undefined;
}

export interface Call {
  type: string;
  cmd: string;
  id: string;
  ifName: string;
  conf: Record<string, unknown>;
}

/** Fake CNI plugins: bridge allocates the next free address of its range (runtimeConfig.ips honoured). */
export function fakeCni(opts: { failBridgeAdd?: boolean } = {}) {
  const calls: Call[] = [];
  const allocated = new Map<string, string>(); // "id/if" → ip
  const exec: CniExec = async (binary, env, stdin) => {
    const type = binary.split('/').pop()!;
    const conf = JSON.parse(stdin) as Record<string, any>;
    const cmd = env.CNI_COMMAND;
    const key = `${env.CNI_CONTAINERID}/${env.CNI_IFNAME}`;
    calls.push({ type, cmd, id: env.CNI_CONTAINERID, ifName: env.CNI_IFNAME, conf });
    const ok = (o: unknown) => ({ code: 0, stdout: JSON.stringify(o), stderr: '' });
    if (cmd === 'DEL') {
      if (type === 'bridge') allocated.delete(key);
      return { code: 0, stdout: '', stderr: '' };
    }
    if (type === 'loopback') return ok({ cniVersion: '1.0.0', interfaces: [{ name: 'lo', sandbox: env.CNI_NETNS }] });
    if (type === 'tuning') {
      const prev = conf.prevResult;
      prev.interfaces[2].mac = conf.runtimeConfig?.mac;
      return ok(prev);
    }
    if (opts.failBridgeAdd) return { code: 1, stdout: JSON.stringify({ cniVersion: '1.0.0', code: 11, msg: 'failed to set bridge addr' }), stderr: '' };
    const range = conf.ipam.ranges[0][0] as { subnet: string; gateway?: string; rangeStart?: string };
    const [base, prefix] = range.subnet.split('/');
    const parts = (range.rangeStart ?? base).split('.').map(Number);
    const want = (conf.runtimeConfig?.ips as string[] | undefined)?.[0]?.split('/')[0];
    let ip = want;
    for (let n = range.rangeStart ? parts[3] : parts[3] + 2; !ip; n++) {
      const cand = `${parts[0]}.${parts[1]}.${parts[2]}.${n}`;
      if (![...allocated.values()].includes(cand)) ip = cand;
    }
    allocated.set(key, ip);
    const gw = range.gateway ?? `${base.split('.').slice(0, 3).join('.')}.1`;
    return ok({
      cniVersion: '1.0.0',
      interfaces: [{ name: conf.bridge, mac: '02:00:00:00:00:01' }, { name: 'veth1234', mac: '02:00:00:00:00:02' }, { name: env.CNI_IFNAME, mac: '0a:58:00:00:00:09', sandbox: env.CNI_NETNS }],
      ips: [{ address: `${ip}/${prefix}`, gateway: gw, interface: 2 }],
    });
  };
  return { exec, calls, allocated };
}

/** The engine with the plugin; `publishing`: the DNS servers' port (tests: 0) and the like. */
export async function setup(config: NetworkCniConfig = {}, cni = fakeCni(), routes = '', extra: Plugin[] = [], publishing?: PublishingOptions) {
  t = await createTestEngine({ plugins: [] });
  const routesFile = join(t.dir, 'route');
  await writeFile(routesFile, `Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n${routes}`);
  const netns = new Set<string>();
  const binds: string[] = [];
  const hostDir = join(t.dir, 'host');
  await mkdir(hostDir, { recursive: true });
  await writeFile(join(hostDir, 'resolv.conf'), 'nameserver 10.9.9.9\n');
  const plugin = networkCniPlugin({
    config,
    exec: cni.exec,
    skipHostChecks: true,
    routesFile,
    netns: {
      create: async (f) => void netns.add(f),
      bind: async (f, src) => {
        netns.add(f);
        binds.push(src);
      },
      remove: async (f) => void netns.delete(f),
    },
    ...(publishing ? { publishing } : {}),
  });
  const plugins = [...extra, plugin, networkBasicPlugin({ config: { resolvConfFile: join(hostDir, 'resolv.conf'), hostsFile: join(hostDir, 'hosts') } })];
  await t.restart({ plugins });
  const svc = t.engine.container.resolve(INetworkService) as NetworkService;
  return { te: t, cni, netns, binds, svc, plugins, hostDir };
}

export async function run(te: TestEngine, hc: HostConfig = {}, extra: Parameters<TestEngine['createContainer']>[0] = {}) {
  const id = await te.createContainer({ Config: { Cmd: ['/bin/true'] }, HostConfig: hc, ...extra });
  await te.engine.containers.start(id);
  return id;
}
