/**
 * What the AppArmor plugin asks of the host, behind one interface so tests can fake a host
 * with AppArmor: the profiles loaded in the kernel (securityfs' `profiles` list), loading a
 * profile (`apparmor_parser -Kr`: replace, no cache), berthd's own label and which of the
 * system's include files exist.
 */
import { execFile } from 'node:child_process';
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SystemError } from '@berth/core';

export interface AppArmorHost {
  /** Names of the profiles loaded in the kernel. */
  loadedProfiles(): Promise<Set<string>>;
  /** Load (or replace) the profile in this file. */
  load(file: string): Promise<void>;
  /** berthd's own label (`unconfined` when it runs without a profile). */
  daemonProfile(): Promise<string>;
  /** Does `<configDir>/<path>` exist (tunables/global, abstractions/base)? */
  hasInclude(path: string): Promise<boolean>;
}

export interface SystemAppArmorOptions {
  /** The apparmor_parser binary (default: found on PATH). */
  parser?: string;
  /** Default /sys/kernel/security/apparmor/profiles. */
  profilesFile?: string;
  /** Default /etc/apparmor.d. */
  configDir?: string;
}

/** `name (mode)` lines → names. */
export function parseProfilesList(text: string): Set<string> {
  const out = new Set<string>();
  for (const line of text.split('\n')) {
    const name = line.replace(/ \([a-z-]+\)$/, '').trim();
    if (name) out.add(name);
  }
  return out;
}

export class SystemAppArmor implements AppArmorHost {
  constructor(private readonly o: SystemAppArmorOptions = {}) {}

  async loadedProfiles(): Promise<Set<string>> {
    return parseProfilesList(await readFile(this.o.profilesFile ?? '/sys/kernel/security/apparmor/profiles', 'utf8'));
  }

  load(file: string): Promise<void> {
    const parser = this.o.parser ?? 'apparmor_parser';
    return new Promise((resolve, reject) => {
      execFile(parser, ['-Kr', file], { timeout: 60_000 }, (err, _stdout, stderr) => {
        if (err) reject(new SystemError(`apparmor: ${parser} -Kr ${file} failed: ${String(stderr).trim() || err.message}`, { cause: err }));
        else resolve();
      });
    });
  }

  async daemonProfile(): Promise<string> {
    const label = await readFile('/proc/self/attr/current', 'utf8').catch(() => 'unconfined');
    // "name (enforce)" or "unconfined"
    return label.replace(/\0/g, '').trim().replace(/ \([a-z-]+\)$/, '') || 'unconfined';
  }

  async hasInclude(path: string): Promise<boolean> {
    return access(join(this.o.configDir ?? '/etc/apparmor.d', path)).then(
      () => true,
      () => false,
    );
  }
}
