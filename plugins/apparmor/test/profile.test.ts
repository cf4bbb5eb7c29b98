/**
 * The generated berth-default profile goes through the real apparmor_parser (Debian's apparmor
 * package) in its no-kernel-load mode, with and without the system's include files, so a syntax
 * error in the template fails here; a broken profile shows the check can fail. Names that
 * could inject rules are refused.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { generateProfile, isValidProfileName, parseProfilesList } from '../src/index.js';

function findParser(): string | null {
  for (const p of ['/usr/sbin/apparmor_parser', '/sbin/apparmor_parser']) {
    if (spawnSync(p, ['--version']).status === 0) return p;
  }
  return null;
}
const parser = findParser();
const dir = mkdtempSync(join(tmpdir(), 'berth-apparmor-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** apparmor_parser -Q (skip kernel load) -K (no cache): compiles the profile, loads nothing. */
function check(text: string): { status: number | null; stderr: string } {
  const file = join(dir, `p-${Math.random().toString(16).slice(2)}`);
  writeFileSync(file, text);
  const r = spawnSync(parser!, ['-Q', '-K', file], { encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr };
}

describe.skipIf(!parser)(`berth-default through apparmor_parser${parser ? '' : ' (skipped: apparmor_parser not installed; apt-get install apparmor)'}`, () => {
  it('compiles with the system includes (tunables/global, abstractions/base)', () => {
    const r = check(generateProfile({ tunables: true, abstractionsBase: true }));
    expect(r.status, r.stderr).toBe(0);
  });

  it('compiles without them (@{PROC} defined by the profile itself), with another daemon label', () => {
    const r = check(generateProfile({ daemonProfile: 'berthd-profile' }));
    expect(r.status, r.stderr).toBe(0);
  });

  it('the expanded profile (-p) has the deny rules of docker-default', () => {
    const file = join(dir, 'expanded');
    writeFileSync(file, generateProfile({ tunables: true, abstractionsBase: true }));
    const out = execFileSync(parser!, ['-Q', '-K', '-p', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    expect(out).toMatch(/^profile berth-default flags=\(attach_disconnected,mediate_deleted\) \{$/m);
    for (const r of ['deny mount,', 'deny @{PROC}/kcore rwklx,', 'deny /sys/kernel/security/** rwklx,', 'ptrace (trace,read,tracedby,readby) peer=berth-default,', 'signal (receive) peer=runc,']) {
      expect(out).toContain(r);
    }
  });

  it('a broken profile fails the check (the check can fail)', () => {
    const broken = generateProfile().replace('deny mount,', 'deny mount');
    expect(check(broken).status).not.toBe(0);
  });
});

describe('profile names', () => {
  it('refuses names that could inject rules or paths', () => {
    for (const bad of ['', 'a b', 'x{', 'x,', 'x\n}', '/abs', 'a\0b']) {
      expect(isValidProfileName(bad), JSON.stringify(bad)).toBe(false);
      expect(() => generateProfile({ name: bad || ' ' })).toThrow(/invalid profile name/);
    }
    expect(isValidProfileName('docker-default')).toBe(true);
    expect(() => generateProfile({ daemonProfile: 'x, deny' })).toThrow(/invalid daemon profile/);
  });

  it('reads the kernel’s list of loaded profiles', () => {
    expect(parseProfilesList('berth-default (enforce)\n/usr/bin/man (complain)\nsnap.x (kill)\n\n')).toEqual(new Set(['berth-default', '/usr/bin/man', 'snap.x']));
  });
});
