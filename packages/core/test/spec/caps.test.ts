import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ALL_CAPABILITIES,
  DEFAULT_CAPABILITIES,
  grantableCapabilities,
  knownCapabilities,
  normalizeCapability,
  parseCapabilities,
} from '../../src/spec/index.js';
import { build, tempRootfs, thrown } from './helpers.js';

describe('normalizeCapability', () => {
  it.each([
    ['net_admin', 'CAP_NET_ADMIN'],
    ['CAP_NET_ADMIN', 'CAP_NET_ADMIN'],
    ['Cap_Net_Admin', 'CAP_NET_ADMIN'],
    ['sys_time', 'CAP_SYS_TIME'],
    ['all', 'ALL'],
    ['ALL', 'ALL'],
  ])('%s → %s', (input, out) => {
    expect(normalizeCapability(input)).toBe(out);
  });

  it('refuses an unknown capability with dockerd\'s message', () => {
    const err = thrown(() => normalizeCapability('foo'));
    expect(err.kind).toBe('InvalidParameter');
    expect(err.message).toBe('unknown capability: "CAP_FOO"');
  });

  it('refuses a capability the host kernel does not know', () => {
    expect(thrown(() => normalizeCapability('bpf', knownCapabilities(37))).message).toBe('unknown capability: "CAP_BPF"');
    expect(normalizeCapability('bpf', knownCapabilities(40))).toBe('CAP_BPF');
  });
});

describe('knownCapabilities', () => {
  it('lists the caps up to cap_last_cap, in number order', () => {
    expect(knownCapabilities(37)).toHaveLength(38);
    expect(knownCapabilities(37).at(-1)).toBe('CAP_AUDIT_READ');
    expect(knownCapabilities(40)).toEqual(ALL_CAPABILITIES);
    expect(ALL_CAPABILITIES[21]).toBe('CAP_SYS_ADMIN');
    expect(ALL_CAPABILITIES[40]).toBe('CAP_CHECKPOINT_RESTORE');
  });
});

describe('parseCapabilities', () => {
  it('defaults to dockerd\'s 14 capabilities in dockerd\'s order', () => {
    expect(parseCapabilities()).toEqual([...DEFAULT_CAPABILITIES]);
    expect(DEFAULT_CAPABILITIES).toHaveLength(14);
    expect(DEFAULT_CAPABILITIES[0]).toBe('CAP_CHOWN');
    expect(DEFAULT_CAPABILITIES.at(-1)).toBe('CAP_AUDIT_WRITE');
  });

  it('drops then adds, case-insensitive, with or without CAP_', () => {
    const caps = parseCapabilities({ capAdd: ['NET_ADMIN', 'cap_sys_time'], capDrop: ['chown', 'CAP_MKNOD'] });
    expect(caps).not.toContain('CAP_CHOWN');
    expect(caps).not.toContain('CAP_MKNOD');
    expect(caps.slice(-2)).toEqual(['CAP_NET_ADMIN', 'CAP_SYS_TIME']);
    expect(caps).toHaveLength(14);
  });

  it('CapDrop ALL keeps only CapAdd', () => {
    expect(parseCapabilities({ capDrop: ['ALL'], capAdd: ['kill'] })).toEqual(['CAP_KILL']);
    expect(parseCapabilities({ capDrop: ['all'] })).toEqual([]);
  });

  it('CapAdd ALL gives every known cap but the dropped ones', () => {
    const caps = parseCapabilities({ capAdd: ['ALL'], capDrop: ['NET_RAW'], known: knownCapabilities(40) });
    expect(caps).toHaveLength(40);
    expect(caps).not.toContain('CAP_NET_RAW');
    expect(caps).toContain('CAP_SYS_ADMIN');
  });

  it('privileged gets every known cap, ignoring CapDrop', () => {
    expect(parseCapabilities({ privileged: true, capDrop: ['ALL'], known: knownCapabilities(37) })).toEqual(knownCapabilities(37));
  });

  it('privileged and CapAdd ALL get only what is grantable (the daemon bounding set), CapAdd ALL minus its drops', () => {
    // a bounding set without CAP_SYS_RESOURCE (24), as in a sandbox that dropped it
    const bounding = ((1n << 41n) - 1n) & ~(1n << 24n);
    const grantable = grantableCapabilities(knownCapabilities(40), bounding);
    expect(grantable).toHaveLength(40);
    expect(grantable).not.toContain('CAP_SYS_RESOURCE');
    expect(parseCapabilities({ privileged: true, known: knownCapabilities(40), grantable })).toEqual(grantable);
    const all = parseCapabilities({ capAdd: ['ALL'], capDrop: ['NET_RAW'], known: knownCapabilities(40), grantable });
    expect(all).toHaveLength(39);
    expect(all).not.toContain('CAP_SYS_RESOURCE');
    // naming it is still valid (runc decides), only the wildcard is bounded
    expect(parseCapabilities({ capAdd: ['SYS_RESOURCE'], known: knownCapabilities(40), grantable })).toContain('CAP_SYS_RESOURCE');
  });

  it('grantableCapabilities: no bounding set known → every known cap; bits past cap_last_cap are ignored', () => {
    expect(grantableCapabilities(knownCapabilities(37))).toEqual(knownCapabilities(37));
    expect(grantableCapabilities(knownCapabilities(37), (1n << 64n) - 1n)).toEqual(knownCapabilities(37));
    expect(grantableCapabilities(knownCapabilities(40), 0b101n)).toEqual(['CAP_CHOWN', 'CAP_DAC_READ_SEARCH']);
  });

  it('lists a capability once', () => {
    const caps = parseCapabilities({ capAdd: ['CHOWN', 'chown', 'NET_ADMIN', 'net_admin'] });
    expect(caps.filter((c) => c === 'CAP_CHOWN')).toHaveLength(1);
    expect(caps.filter((c) => c === 'CAP_NET_ADMIN')).toHaveLength(1);
  });

  it('names the field of an unknown capability', () => {
    const add = thrown(() => parseCapabilities({ capAdd: ['FOO'] }));
    expect(add.message).toBe('invalid CapAdd: unknown capability: "CAP_FOO"');
    expect(add.kind).toBe('InvalidParameter');
    expect(thrown(() => parseCapabilities({ capDrop: ['bar'] })).message).toBe('invalid CapDrop: unknown capability: "CAP_BAR"');
  });
});

describe('capabilities in the built spec', () => {
  let r: { dir: string; cleanup: () => void };
  beforeAll(() => {
    r = tempRootfs();
  });
  afterAll(() => r.cleanup());

  it('root gets bounding, effective and permitted; no inheritable or ambient', async () => {
    const spec = await build(r.dir);
    const c = spec.process!.capabilities!;
    expect(c.bounding).toEqual([...DEFAULT_CAPABILITIES]);
    expect(c.effective).toEqual([...DEFAULT_CAPABILITIES]);
    expect(c.permitted).toEqual([...DEFAULT_CAPABILITIES]);
    expect(c.inheritable).toBeUndefined();
    expect(c.ambient).toBeUndefined();
  });

  it('a non-root user keeps only the bounding set', async () => {
    const spec = await build(r.dir, { User: 'alice' }, { CapAdd: ['NET_ADMIN'] });
    const c = spec.process!.capabilities!;
    expect(c.bounding).toContain('CAP_NET_ADMIN');
    expect(c.effective).toBeUndefined();
    expect(c.permitted).toBeUndefined();
  });

  it('privileged gets all caps of the host (cap_last_cap 40 → 41 caps)', async () => {
    const spec = await build(r.dir, {}, { Privileged: true });
    expect(spec.process!.capabilities!.bounding).toEqual([...ALL_CAPABILITIES]);
  });

  it('privileged gets no capability outside the daemon bounding set (host.capBounding)', async () => {
    const spec = await build(r.dir, {}, { Privileged: true }, { host: { capLastCap: 40, cgroupV2: false, cpuCount: 4, capBounding: ~(1n << 21n) & ((1n << 41n) - 1n) } });
    const bounding = spec.process!.capabilities!.bounding!;
    expect(bounding).toHaveLength(40);
    expect(bounding).not.toContain('CAP_SYS_ADMIN');
  });

  it('an unknown cap fails the build as InvalidParameter', async () => {
    await expect(build(r.dir, {}, { CapAdd: ['NOPE'] })).rejects.toMatchObject({
      kind: 'InvalidParameter',
      message: 'invalid CapAdd: unknown capability: "CAP_NOPE"',
    });
  });
});
