/** --init's binary (src/init.ts): which host file becomes /sbin/docker-init, and the version /info shows. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseInitVersion, resolveInitPath } from '../src/init.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-init-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('parseInitVersion', () => {
  it('the git commit when tini prints one (dockerd fills InitCommit.ID with it)', () => {
    expect(parseInitVersion('tini version 0.19.0 - git.de40ad0\n')).toBe('de40ad0');
  });
  it("the version when it prints none (Debian's tini-static)", () => {
    expect(parseInitVersion('tini version 0.19.0\n')).toBe('0.19.0');
  });
  it('unknown output: undefined', () => {
    expect(parseInitVersion('catatonit v0.1.7')).toBeUndefined();
  });
});

describe('resolveInitPath', () => {
  it('a configured path is kept, even when missing (the start that needs it fails naming it)', () => {
    expect(resolveInitPath('/nonexistent/docker-init', '')).toBe('/nonexistent/docker-init');
  });
  it('a configured name is looked up in PATH', () => {
    const bin = path.join(dir, 'my-init');
    fs.writeFileSync(bin, '#!/bin/sh\n', { mode: 0o755 });
    expect(resolveInitPath('my-init', dir)).toBe(bin);
  });
  it('unset: tini on PATH when there is no /usr/bin/tini-static; none found: undefined', () => {
    const found = resolveInitPath(undefined, dir);
    if (fs.existsSync('/usr/bin/tini-static')) expect(found).toBe('/usr/bin/tini-static');
    else expect(found).toBeUndefined();
    const tini = path.join(dir, 'tini');
    fs.writeFileSync(tini, '#!/bin/sh\n', { mode: 0o755 });
    expect(resolveInitPath(undefined, dir)).toBe(fs.existsSync('/usr/bin/tini-static') ? '/usr/bin/tini-static' : tini);
  });
});
