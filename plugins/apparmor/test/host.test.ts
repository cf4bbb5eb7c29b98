/**
 * SystemAppArmor, the plugin's real host access, on files and a stand-in apparmor_parser in a
 * temp dir (no kernel AppArmor needed): `-Kr <file>` is what loads, a failing parser's stderr
 * reaches the error, the kernel's profile list is read, include files are probed.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { errorKind } from '@berth/core';
import { SystemAppArmor } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-aa-host-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function parser(name: string, body: string): string {
  const p = join(dir, name);
  writeFileSync(p, `#!/bin/sh\n${body}\n`);
  chmodSync(p, 0o755);
  return p;
}

describe('SystemAppArmor', () => {
  it('loads with apparmor_parser -Kr <file>', async () => {
    const argsFile = join(dir, 'args');
    const aa = new SystemAppArmor({ parser: parser('ok-parser', `echo "$@" > ${argsFile}`) });
    await aa.load('/some/profile');
    expect(readFileSync(argsFile, 'utf8').trim()).toBe('-Kr /some/profile');
  });

  it('a failing parser: a SystemError with its stderr', async () => {
    const aa = new SystemAppArmor({ parser: parser('bad-parser', 'echo "AppArmor parser error at line 3" >&2; exit 1') });
    const err = await aa.load('/some/profile').catch((e: unknown) => e);
    expect(errorKind(err)).toBe('System');
    expect((err as Error).message).toMatch(/-Kr \/some\/profile failed: AppArmor parser error at line 3/);
  });

  it('reads the loaded profiles and probes the include files', async () => {
    const profilesFile = join(dir, 'profiles');
    writeFileSync(profilesFile, 'berth-default (enforce)\nmy-profile (complain)\n');
    mkdirSync(join(dir, 'etc', 'tunables'), { recursive: true });
    writeFileSync(join(dir, 'etc', 'tunables', 'global'), '');
    const aa = new SystemAppArmor({ profilesFile, configDir: join(dir, 'etc') });
    expect(await aa.loadedProfiles()).toEqual(new Set(['berth-default', 'my-profile']));
    expect(await aa.hasInclude('tunables/global')).toBe(true);
    expect(await aa.hasInclude('abstractions/base')).toBe(false);
  });
});
