/** Platform strings (linux/amd64/v8) and manifest-list selection, defaulting to the host. */
import { InvalidParameterError } from '@berth/core';
import type { Descriptor, Platform } from './types.js';

export function hostPlatform(): Platform {
  const arch = ({ x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' } as Record<string, string>)[process.arch] ?? process.arch;
  return { os: 'linux', architecture: arch, ...(arch === 'arm64' ? { variant: 'v8' } : {}) };
}

/** Parses `linux`, `linux/amd64`, `linux/arm/v7`, `amd64` (os defaults to linux). */
export function parsePlatform(s: string | undefined | null): Platform {
  if (!s) return hostPlatform();
  const parts = s.toLowerCase().split('/');
  if (parts.length > 3 || parts.some((p) => !p)) throw new InvalidParameterError(`invalid platform: "${s}"`);
  let [os, architecture, variant] = parts;
  if (parts.length === 1) {
    if (os !== 'linux' && os !== 'windows' && os !== 'darwin') {
      architecture = os;
      os = 'linux';
    } else {
      architecture = hostPlatform().architecture;
    }
  }
  const norm: Record<string, string> = { x86_64: 'amd64', 'x86-64': 'amd64', aarch64: 'arm64', armhf: 'arm', armel: 'arm', i386: '386' };
  architecture = norm[architecture] ?? architecture;
  if (architecture === 'arm64' && !variant) variant = 'v8';
  return { os, architecture, ...(variant ? { variant } : {}) };
}

export function platformString(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

export function platformMatches(want: Platform, have: Platform | undefined): boolean {
  if (!have) return false;
  if (want.os !== have.os) return false;
  const arch = have.architecture === 'aarch64' ? 'arm64' : have.architecture;
  if (want.architecture !== arch) return false;
  if (want.variant && have.variant && want.variant !== have.variant) return false;
  if (want.variant && !have.variant && !(arch === 'arm64' && want.variant === 'v8')) return false;
  return true;
}

/** Picks the manifest for `want` from an index; throws NotFound-like InvalidParameter with Docker's message. */
export function selectManifest(manifests: Descriptor[], want: Platform): Descriptor | null {
  const candidates = manifests.filter((m) => platformMatches(want, m.platform));
  if (candidates.length === 0) return null;
  // prefer an exact variant match
  return candidates.find((m) => (m.platform?.variant ?? '') === (want.variant ?? '')) ?? candidates[0];
}
