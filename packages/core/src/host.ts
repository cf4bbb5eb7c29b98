/**
 * Host probes (token `IHost`): what the machine supports, so plugins skip themselves when a
 * feature is missing (containerd's HostSupports / ErrSkipPlugin). Tests use a fake
 * (@berth/testing's FakeHost).
 */
import { access, readFile } from 'node:fs/promises';
import { constants } from 'node:fs';
import { join } from 'node:path';
import { release } from 'node:os';
import { nativeAddon, type SyscallAbis } from '@berth/native';

export interface HostFeatures {
  apparmor: boolean;
  seccomp: boolean;
  selinux: boolean;
  /** Unprivileged user namespaces can be created (or we are root in the initial one). */
  userns: boolean;
  cgroupVersion: 1 | 2;
  /** The `criu` binary is on PATH. */
  criu: boolean;
  kernel: string;
  /**
   * Which extra syscall ABIs an x86_64 kernel serves (probed once through @berth/native's
   * `syscallAbis()`): `x32` false where the kernel has no x32 ABI, `ia32` false where IA32
   * emulation is off; null, or the field absent (another Host, no addon), means unknown. The
   * seccomp plugin leaves a refused ABI out of its filters.
   */
  syscallAbis?: SyscallAbis;
}

export interface Host {
  features(): Promise<HostFeatures>;
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p, constants.F_OK);
    return true;
  } catch {
    return false;
  }
}

async function onPath(bin: string): Promise<boolean> {
  for (const d of (process.env.PATH ?? '').split(':').filter(Boolean)) {
    try {
      await access(join(d, bin), constants.X_OK);
      return true;
    } catch {
      // next
    }
  }
  return false;
}

let abis: SyscallAbis | undefined;
/** The kernel's syscall ABIs, probed once per process (two forked children; no addon: unknown). */
function syscallAbis(): SyscallAbis {
  abis ??= nativeAddon()?.syscallAbis() ?? { x32: null, ia32: null };
  return abis;
}

/** Probes /sys and /proc once and caches the answer. */
export class SystemHost implements Host {
  private cached: Promise<HostFeatures> | undefined;

  features(): Promise<HostFeatures> {
    this.cached ??= this.probe();
    return this.cached;
  }

  private async probe(): Promise<HostFeatures> {
    const read = (p: string) => readFile(p, 'utf8').then((s) => s.trim(), () => '');
    const apparmor = (await read('/sys/module/apparmor/parameters/enabled')) === 'Y';
    const status = await read('/proc/self/status');
    const seccomp = /^Seccomp:\s*\d/m.test(status);
    const selinux = (await read('/sys/fs/selinux/enforce')) !== '';
    const maxUserNs = Number((await read('/proc/sys/user/max_user_namespaces')) || '0');
    const cgroupVersion = (await exists('/sys/fs/cgroup/cgroup.controllers')) ? 2 : 1;
    return { apparmor, seccomp, selinux, userns: maxUserNs > 0, cgroupVersion, criu: await onPath('criu'), kernel: release(), syscallAbis: syscallAbis() };
  }
}
