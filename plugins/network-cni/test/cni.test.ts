/**
 * The CNI runner against fake plugin binaries (small Node scripts in a temp dir, no root): the
 * chain order and prevResult of ADD, DEL in reverse with the cached ADD result (also from a
 * new runner: the cache survives a daemon restart), CNI_* environment and CNI_ARGS,
 * runtimeConfig only for declared capabilities, a plugin's error object surfaced, a failed ADD
 * deleted again, an idempotent DEL, CHECK and VERSION, and the refusals of bad input.
 */
import { chmod, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CniError, CniRunner, parseConfList, type CniConfList } from '../src/index.js';

let dir: string;
let bin: string;
let log: string;

/** A fake plugin: logs {type, env, conf} to the log file, then answers per `behaviour`. */
async function fakePlugin(type: string, behaviour: 'ok' | 'fail' | 'garbage' = 'ok'): Promise<void> {
  const script = `#!${process.execPath}
const fs = require('node:fs');
const conf = JSON.parse(fs.readFileSync(0, 'utf8') || '{}');
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('CNI_')));
fs.appendFileSync(${JSON.stringify(log)}, JSON.stringify({ type: ${JSON.stringify(type)}, env, conf }) + '\\n');
const cmd = process.env.CNI_COMMAND;
if (cmd === 'VERSION') { process.stdout.write(JSON.stringify({ cniVersion: '1.0.0', supportedVersions: ['0.4.0', '1.0.0'] })); process.exit(0); }
if (${JSON.stringify(behaviour)} === 'fail' && cmd === 'ADD') { process.stdout.write(JSON.stringify({ cniVersion: '1.0.0', code: 11, msg: 'no more addresses', details: 'range full' })); process.exit(1); }
if (${JSON.stringify(behaviour)} === 'garbage' && cmd === 'ADD') { process.stdout.write('not json'); process.exit(0); }
if (cmd === 'ADD') {
  const prev = conf.prevResult || { cniVersion: conf.cniVersion, interfaces: [], ips: [] };
  const n = prev.interfaces.length;
  process.stdout.write(JSON.stringify({ ...prev, interfaces: [...prev.interfaces, { name: ${JSON.stringify(type)} + n }], ips: [...prev.ips, { address: '10.0.0.' + (n + 2) + '/24' }] }));
}
`;
  const p = join(bin, type);
  await writeFile(p, script);
  await chmod(p, 0o755);
}

interface Call {
  type: string;
  env: Record<string, string>;
  conf: Record<string, unknown>;
}
async function calls(): Promise<Call[]> {
  const text = await readFile(log, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Call);
}

const list = (...plugins: CniConfList['plugins']): CniConfList => ({ cniVersion: '1.0.0', name: 'testnet', plugins });
const att = { containerId: 'c0ffee', netns: '/run/netns/x', ifName: 'eth0' };

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-cni-'));
  bin = join(dir, 'bin');
  log = join(dir, 'calls.log');
  await (await import('node:fs/promises')).mkdir(bin);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('CniRunner', () => {
  it('ADD runs the chain in order with prevResult; DEL runs it in reverse with the cached result, from a new runner too', async () => {
    await fakePlugin('first');
    await fakePlugin('second');
    const cacheDir = join(dir, 'cache');
    const r1 = new CniRunner({ binDirs: [join(dir, 'none'), bin], cacheDir });
    const result = await r1.add(list({ type: 'first', extra: 1 }, { type: 'second' }), { ...att, args: [['IgnoreUnknown', '1'], ['K8S_POD_NAME', 'p']] });
    expect(result.interfaces?.map((i) => i.name)).toEqual(['first0', 'second1']);
    const add = await calls();
    expect(add.map((c) => [c.type, c.env.CNI_COMMAND])).toEqual([
      ['first', 'ADD'],
      ['second', 'ADD'],
    ]);
    expect(add[0]!.env).toMatchObject({ CNI_CONTAINERID: 'c0ffee', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0', CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=p', CNI_PATH: `${join(dir, 'none')}:${bin}` });
    expect(add[0]!.conf).toEqual({ type: 'first', extra: 1, cniVersion: '1.0.0', name: 'testnet' });
    expect((add[1]!.conf.prevResult as { interfaces: unknown[] }).interfaces).toHaveLength(1);
    expect(await r1.cachedResult(att)).toEqual(result);

    await writeFile(log, '');
    const r2 = new CniRunner({ binDirs: [bin], cacheDir }); // after a restart: only the cache knows
    await r2.del({ containerId: att.containerId, ifName: att.ifName });
    const del = await calls();
    expect(del.map((c) => [c.type, c.env.CNI_COMMAND])).toEqual([
      ['second', 'DEL'],
      ['first', 'DEL'],
    ]);
    expect(del[0]!.conf.prevResult).toEqual(result);
    expect(del[0]!.env).toMatchObject({ CNI_NETNS: '/run/netns/x', CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=p' });
    expect(await readdir(cacheDir)).toEqual([]);

    await writeFile(log, '');
    await r2.del({ containerId: att.containerId, ifName: att.ifName }); // again: nothing cached, nothing to undo
    expect(await calls()).toEqual([]);
  });

  it('runtimeConfig carries only the capabilities a plugin declares', async () => {
    await fakePlugin('bridge');
    await fakePlugin('portmap');
    const r = new CniRunner({ binDirs: [bin], cacheDir: join(dir, 'cache') });
    const ports = [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }];
    await r.add(list({ type: 'bridge' }, { type: 'portmap', capabilities: { portMappings: true, ipRanges: false } }), { ...att, capabilityArgs: { portMappings: ports, ipRanges: [[{ subnet: '10.1.0.0/16' }]], mac: 'aa:bb:cc:dd:ee:ff' } });
    const [bridge, portmap] = await calls();
    expect(bridge!.conf.runtimeConfig).toBeUndefined();
    expect(portmap!.conf.runtimeConfig).toEqual({ portMappings: ports });
  });

  it("a plugin's error object becomes a CniError; the chain is deleted again and nothing stays cached", async () => {
    await fakePlugin('first');
    await fakePlugin('broken', 'fail');
    const cacheDir = join(dir, 'cache');
    const r = new CniRunner({ binDirs: [bin], cacheDir });
    const err = await r.add(list({ type: 'first' }, { type: 'broken' }), att).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CniError);
    expect(err).toMatchObject({ plugin: 'broken', command: 'ADD', code: 11, msg: 'no more addresses', details: 'range full' });
    expect((err as Error).message).toContain('no more addresses');
    expect((await calls()).map((c) => [c.type, c.env.CNI_COMMAND])).toEqual([
      ['first', 'ADD'],
      ['broken', 'ADD'],
      ['broken', 'DEL'],
      ['first', 'DEL'],
    ]);
    expect(await readdir(cacheDir)).toEqual([]);
  });

  it('output that is not JSON is an error naming the plugin; a missing plugin is named too', async () => {
    await fakePlugin('garbage', 'garbage');
    const r = new CniRunner({ binDirs: [bin], cacheDir: join(dir, 'cache') });
    await expect(r.add(list({ type: 'garbage' }), att)).rejects.toThrow(/garbage.*unparsable/);
    await expect(r.add(list({ type: 'nosuch' }), att)).rejects.toThrow(/CNI plugin nosuch not found in/);
  });

  it('CHECK runs with the cached result unless the list disables it; VERSION answers', async () => {
    await fakePlugin('only');
    const r = new CniRunner({ binDirs: [bin], cacheDir: join(dir, 'cache') });
    await expect(r.check(att)).rejects.toThrow(/no cached result/);
    const result = await r.add(list({ type: 'only' }), att);
    await writeFile(log, '');
    await r.check(att);
    const [check] = await calls();
    expect(check!.env.CNI_COMMAND).toBe('CHECK');
    expect(check!.conf.prevResult).toEqual(result);
    await r.del(att);
    await r.add({ ...list({ type: 'only' }), disableCheck: true }, att);
    await writeFile(log, '');
    await r.check(att);
    expect(await calls()).toEqual([]);
    expect(await r.version('only')).toEqual({ cniVersion: '1.0.0', supportedVersions: ['0.4.0', '1.0.0'] });
  });

  it('refuses bad config lists, plugin types and attachment names', async () => {
    expect(() => parseConfList('{"name":"n","cniVersion":"1.0.0","plugins":[]}')).toThrow(/non-empty/);
    expect(() => parseConfList({ name: '../x', cniVersion: '1.0.0', plugins: [{ type: 'bridge' }] })).toThrow(/invalid name/);
    expect(() => parseConfList({ name: 'n', cniVersion: '1.0', plugins: [{ type: 'bridge' }] })).toThrow(/cniVersion/);
    expect(() => parseConfList({ name: 'n', cniVersion: '1.0.0', plugins: [{ type: '../../bin/sh' }] })).toThrow(/invalid plugin type/);
    expect(parseConfList('{"name":"n","cniVersion":"0.4.0","plugins":[{"type":"loopback"}]}').plugins).toHaveLength(1);
    const r = new CniRunner({ binDirs: [bin], cacheDir: join(dir, 'cache') });
    await expect(r.find('../x')).rejects.toThrow(/invalid CNI plugin type/);
    await fakePlugin('ok');
    await expect(r.add(list({ type: 'ok' }), { ...att, containerId: '../../etc' })).rejects.toThrow(/invalid container ID/);
  });
});
