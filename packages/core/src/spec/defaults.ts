import type { OciDeviceCgroup, OciMount, OciSpec } from '../oci.js';

/** The runtime-spec version berth writes (runc ≥ 1.1, crun, youki accept it). */
export const OCI_VERSION = '1.1.0';

/** PATH a container gets when its Config.Env has none (dockerd's DefaultPathEnv on Linux). */
export const DEFAULT_PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Default /dev/shm size (dockerd's DefaultShmSize, 64 MiB). */
export const DEFAULT_SHM_SIZE = 67108864;

/** Default cfs period used to turn NanoCpus into a quota (dockerd: 100ms). */
export const DEFAULT_CPU_PERIOD = 100000;

/**
 * Paths masked in every unprivileged container (dockerd's oci.DefaultLinuxSpec; current
 * dockerd also masks /sys/devices/virtual/powercap — RAPL energy counters leak what other
 * tenants compute — which the 20.10 reference fixtures predate).
 */
export const DEFAULT_MASKED_PATHS: readonly string[] = Object.freeze([
  '/proc/asound',
  '/proc/acpi',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
]);

/** Paths mounted read-only in every unprivileged container (dockerd's oci.DefaultLinuxSpec). */
export const DEFAULT_READONLY_PATHS: readonly string[] = Object.freeze([
  '/proc/bus',
  '/proc/fs',
  '/proc/irq',
  '/proc/sys',
  '/proc/sysrq-trigger',
]);

/**
 * The device cgroup rules of an unprivileged container: deny all, then allow the basic
 * character devices, and deny /dev/fuse explicitly (dockerd's oci.DefaultLinuxSpec).
 * The runtime itself adds its own allow rules for /dev/pts, /dev/ptmx, mknod, …
 */
export function defaultDeviceCgroupRules(): OciDeviceCgroup[] {
  const allow = (major: number, minor: number): OciDeviceCgroup => ({ allow: true, type: 'c', major, minor, access: 'rwm' });
  return [
    { allow: false, access: 'rwm' },
    allow(1, 5), // /dev/zero
    allow(1, 3), // /dev/null
    allow(1, 9), // /dev/urandom
    allow(1, 8), // /dev/random
    allow(5, 0), // /dev/tty
    allow(5, 1), // /dev/console
    { allow: false, type: 'c', major: 10, minor: 229, access: 'rwm' }, // /dev/fuse
  ];
}

/** The mounts every container gets, in dockerd's order. /dev/shm is sized by the IPC opt. */
export function defaultMounts(): OciMount[] {
  return [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    {
      destination: '/dev/pts',
      type: 'devpts',
      source: 'devpts',
      options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
    },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['ro', 'nosuid', 'noexec', 'nodev'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', `size=${DEFAULT_SHM_SIZE}`] },
  ];
}

/**
 * A fresh default spec (a new object on every call): dockerd's defaults before any
 * Config/HostConfig field is applied. Capabilities are set by `withCapabilities`.
 */
export function defaultSpec(): OciSpec {
  return {
    ociVersion: OCI_VERSION,
    process: {
      user: { uid: 0, gid: 0 },
      args: [],
      env: [],
      cwd: '/',
    },
    root: { path: 'rootfs' },
    mounts: defaultMounts(),
    linux: {
      resources: { devices: defaultDeviceCgroupRules() },
      namespaces: [{ type: 'mount' }, { type: 'network' }, { type: 'uts' }, { type: 'pid' }, { type: 'ipc' }],
      maskedPaths: [...DEFAULT_MASKED_PATHS],
      readonlyPaths: [...DEFAULT_READONLY_PATHS],
    },
  };
}
