/**
 * Seccomp profiles in Docker's format (moby/profiles' `Seccomp` type: `archMap`, `names`,
 * `includes`/`excludes` by capabilities, architectures and `minKernel`), their validation
 * (InvalidParameterError with the reason, as dockerd answers a bad `--security-opt seccomp=`)
 * and their evaluation into the OCI `linux.seccomp` object for one container, following the
 * rules of dockerd's setupSeccomp: a rule whose `excludes` matches (an architecture, any of
 * the capabilities in the bounding set, a kernel at least `minKernel`) is dropped, a rule whose
 * `includes` does not match (the architecture, all of the capabilities, the kernel) is dropped.
 * Unlike dockerd, a sub-architecture the host kernel refuses (x32 without the x32 ABI, x86
 * without IA32 emulation: `SeccompTarget.abis`) is left out of the filter's architectures.
 */
import { InvalidParameterError, type OciSeccomp } from '@berth/core';

type OciSyscall = NonNullable<OciSeccomp['syscalls']>[number];
type OciSyscallArg = NonNullable<OciSyscall['args']>[number];

export interface SeccompFilter {
  caps?: string[];
  arches?: string[];
  minKernel?: string;
}

export interface SeccompRule {
  name?: string;
  names?: string[];
  action: string;
  errnoRet?: number;
  args?: OciSyscallArg[];
  comment?: string;
  includes?: SeccompFilter;
  excludes?: SeccompFilter;
}

/** A profile as Docker writes it (docker's default profile, `docker run --security-opt seccomp=file.json`). */
export interface SeccompProfile {
  defaultAction?: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  archMap?: Array<{ architecture: string; subArchitectures?: string[] | null }>;
  listenerPath?: string;
  listenerMetadata?: string;
  flags?: string[];
  syscalls?: SeccompRule[];
}

/** What a profile is evaluated against. */
export interface SeccompTarget {
  /** The container's bounding capabilities (`CAP_…`). */
  caps: readonly string[];
  /** The host's architecture in libseccomp's native names (`amd64`, `arm64`, …): see nativeArch(). */
  arch: string;
  /** The host's kernel release (`uname -r`). */
  kernel: string;
  /**
   * Which extra ABIs the host kernel serves (IHost's `syscallAbis`): a sub-architecture whose
   * ABI is `false` is left out (see subArchesRefused); true, null or absent keep it.
   */
  abis?: { x32?: boolean | null; ia32?: boolean | null };
}

/** The OCI runtime spec's seccomp actions, operators and flags (defs-linux.json). */
const ACTIONS = new Set([
  'SCMP_ACT_KILL',
  'SCMP_ACT_KILL_PROCESS',
  'SCMP_ACT_KILL_THREAD',
  'SCMP_ACT_TRAP',
  'SCMP_ACT_ERRNO',
  'SCMP_ACT_TRACE',
  'SCMP_ACT_ALLOW',
  'SCMP_ACT_LOG',
  'SCMP_ACT_NOTIFY',
]);
const OPERATORS = new Set(['SCMP_CMP_NE', 'SCMP_CMP_LT', 'SCMP_CMP_LE', 'SCMP_CMP_EQ', 'SCMP_CMP_GE', 'SCMP_CMP_GT', 'SCMP_CMP_MASKED_EQ']);

/** libseccomp's native architecture names → the spec's SCMP_ARCH_* (moby's nativeToSeccomp). */
const NATIVE_TO_SECCOMP: Record<string, string> = {
  x86: 'SCMP_ARCH_X86',
  amd64: 'SCMP_ARCH_X86_64',
  arm: 'SCMP_ARCH_ARM',
  arm64: 'SCMP_ARCH_AARCH64',
  loongarch64: 'SCMP_ARCH_LOONGARCH64',
  mips64: 'SCMP_ARCH_MIPS64',
  mips64n32: 'SCMP_ARCH_MIPS64N32',
  mipsel64: 'SCMP_ARCH_MIPSEL64',
  mipsel64n32: 'SCMP_ARCH_MIPSEL64N32',
  mipsel: 'SCMP_ARCH_MIPSEL',
  ppc: 'SCMP_ARCH_PPC',
  ppc64: 'SCMP_ARCH_PPC64',
  ppc64le: 'SCMP_ARCH_PPC64LE',
  riscv64: 'SCMP_ARCH_RISCV64',
  s390: 'SCMP_ARCH_S390',
  s390x: 'SCMP_ARCH_S390X',
};

/** Node's `process.arch` (+ endianness for ppc64) → libseccomp's native name, as Go's GOARCH maps for dockerd. */
export function nativeArch(nodeArch: string = process.arch, littleEndian = true): string {
  switch (nodeArch) {
    case 'x64':
      return 'amd64';
    case 'ia32':
      return 'x86';
    case 'loong64':
      return 'loongarch64';
    case 'ppc64':
      return littleEndian ? 'ppc64le' : 'ppc64';
    case 'mips':
      return 'mips64';
    case 'mipsel':
      return 'mipsel';
    default:
      return nodeArch;
  }
}

/**
 * The sub-architectures of `t` whose syscalls the host kernel refuses, so that a filter entry
 * for them can never match a syscall. Left out of the filter, such a syscall meets runc's
 * bad-architecture action (libseccomp's default, kill) instead of the kernel's ENOSYS: it is
 * refused either way, and runc (libseccomp) no longer builds a filter section for that
 * architecture at every start. Only x86_64's: x32 numbers carry __X32_SYSCALL_BIT under the
 * x86_64 audit arch, ia32 ones come through `int $0x80`.
 */
export function subArchesRefused(t: Pick<SeccompTarget, 'arch' | 'abis'>): string[] {
  if (t.arch !== 'amd64') return [];
  const out: string[] = [];
  if (t.abis?.ia32 === false) out.push('SCMP_ARCH_X86');
  if (t.abis?.x32 === false) out.push('SCMP_ARCH_X32');
  return out;
}

const bad = (why: string) => new InvalidParameterError(`Decoding seccomp profile failed: ${why}`);

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function stringList(v: unknown, what: string): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) throw bad(`${what} must be a list of strings`);
  return v as string[];
}

function optional<T>(v: unknown, type: 'string' | 'number', what: string): T | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== type || (type === 'number' && !Number.isInteger(v))) throw bad(`${what} must be ${type === 'number' ? 'an integer' : 'a string'}`);
  return v as T;
}

const KERNEL_RE = /^(\d+)\.(\d+)/;

function filter(v: unknown, what: string): SeccompFilter | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) throw bad(`${what} must be an object`);
  const minKernel = optional<string>(v.minKernel, 'string', `${what}.minKernel`);
  if (minKernel !== undefined && !/^\d+\.\d+$/.test(minKernel)) throw bad(`${what}.minKernel: invalid kernel version ${JSON.stringify(minKernel)} (want major.minor)`);
  const out: SeccompFilter = {};
  const caps = stringList(v.caps, `${what}.caps`);
  const arches = stringList(v.arches, `${what}.arches`);
  if (caps) out.caps = caps;
  if (arches) out.arches = arches;
  if (minKernel) out.minKernel = minKernel;
  return out;
}

function arg(v: unknown, what: string): OciSyscallArg {
  if (!isObject(v)) throw bad(`${what} must be an object`);
  const index = optional<number>(v.index, 'number', `${what}.index`);
  const value = optional<number>(v.value, 'number', `${what}.value`);
  const valueTwo = optional<number>(v.valueTwo, 'number', `${what}.valueTwo`);
  const op = optional<string>(v.op, 'string', `${what}.op`);
  if (op === undefined || !OPERATORS.has(op)) throw bad(`${what}.op: unknown operator ${JSON.stringify(op ?? '')}`);
  return { index: index ?? 0, value: value ?? 0, ...(valueTwo !== undefined ? { valueTwo } : {}), op };
}

function rule(v: unknown, i: number): SeccompRule {
  const what = `syscalls[${i}]`;
  if (!isObject(v)) throw bad(`${what} must be an object`);
  const name = optional<string>(v.name, 'string', `${what}.name`);
  const names = stringList(v.names, `${what}.names`);
  if (name && names?.length) throw bad("both 'name' and 'names' are specified in the seccomp profile, use either 'name' or 'names'");
  const all = name ? [name] : (names ?? []);
  if (all.length === 0) throw bad(`${what} names no system call`);
  const action = optional<string>(v.action, 'string', `${what}.action`);
  if (!action || !ACTIONS.has(action)) throw bad(`${what}: unknown action ${JSON.stringify(action ?? '')}`);
  if (v.args !== undefined && v.args !== null && !Array.isArray(v.args)) throw bad(`${what}.args must be a list`);
  const args = (v.args as unknown[] | null | undefined)?.map((a, j) => arg(a, `${what}.args[${j}]`));
  const out: SeccompRule = { names: all, action };
  const errnoRet = optional<number>(v.errnoRet, 'number', `${what}.errnoRet`);
  if (errnoRet !== undefined) out.errnoRet = errnoRet;
  if (args?.length) out.args = args;
  const includes = filter(v.includes, `${what}.includes`);
  const excludes = filter(v.excludes, `${what}.excludes`);
  if (includes) out.includes = includes;
  if (excludes) out.excludes = excludes;
  return out;
}

/**
 * Parse and check a profile (JSON text or an already parsed value): InvalidParameterError
 * "Decoding seccomp profile failed: …" naming what is wrong. Normalises `name` into `names`.
 */
export function parseProfile(input: string | unknown): SeccompProfile {
  let v: unknown = input;
  if (typeof input === 'string') {
    try {
      v = JSON.parse(input);
    } catch (err) {
      throw bad((err as Error).message);
    }
  }
  if (!isObject(v)) throw bad('the profile must be a JSON object');
  const out: SeccompProfile = {};
  const defaultAction = optional<string>(v.defaultAction, 'string', 'defaultAction');
  if (defaultAction !== undefined && defaultAction !== '' && !ACTIONS.has(defaultAction)) throw bad(`unknown defaultAction ${JSON.stringify(defaultAction)}`);
  if (defaultAction) out.defaultAction = defaultAction;
  const errno = optional<number>(v.defaultErrnoRet, 'number', 'defaultErrnoRet');
  if (errno !== undefined) out.defaultErrnoRet = errno;
  const architectures = stringList(v.architectures, 'architectures');
  if (v.archMap !== undefined && v.archMap !== null && !Array.isArray(v.archMap)) throw bad('archMap must be a list');
  const archMap = ((v.archMap as unknown[] | null | undefined) ?? []).map((a, i) => {
    if (!isObject(a) || typeof a.architecture !== 'string') throw bad(`archMap[${i}].architecture must be a string`);
    return { architecture: a.architecture, subArchitectures: stringList(a.subArchitectures, `archMap[${i}].subArchitectures`) ?? null };
  });
  if (architectures?.length && archMap.length) {
    throw bad("both 'architectures' and 'archMap' are specified in the seccomp profile, use either 'architectures' or 'archMap'");
  }
  if (architectures?.length) out.architectures = architectures;
  if (archMap.length) out.archMap = archMap;
  const listenerPath = optional<string>(v.listenerPath, 'string', 'listenerPath');
  const listenerMetadata = optional<string>(v.listenerMetadata, 'string', 'listenerMetadata');
  const flags = stringList(v.flags, 'flags');
  if (listenerPath) out.listenerPath = listenerPath;
  if (listenerMetadata) out.listenerMetadata = listenerMetadata;
  if (flags?.length) out.flags = flags;
  if (v.syscalls !== undefined && v.syscalls !== null && !Array.isArray(v.syscalls)) throw bad('syscalls must be a list');
  const syscalls = ((v.syscalls as unknown[] | null | undefined) ?? []).map(rule);
  if (syscalls.length) out.syscalls = syscalls;
  if (!out.defaultAction && syscalls.length) throw bad('defaultAction is missing');
  return out;
}

/** `6.18.0-foo` ≥ `4.8`? (major, then minor; dockerd's kernelGreaterEqualThan). */
export function kernelAtLeast(kernel: string, min: string): boolean {
  const k = KERNEL_RE.exec(kernel);
  const m = KERNEL_RE.exec(min);
  if (!k || !m) throw new InvalidParameterError(`cannot compare kernel version ${JSON.stringify(kernel)} with ${JSON.stringify(min)}`);
  const [km, kn, mm, mn] = [k[1], k[2], m[1], m[2]].map(Number);
  return km !== mm ? km > mm : kn >= mn;
}

function excluded(f: SeccompFilter | undefined, t: SeccompTarget): boolean {
  if (!f) return false;
  if (f.arches?.includes(t.arch)) return true;
  if (f.caps?.some((c) => t.caps.includes(c))) return true;
  return f.minKernel !== undefined && kernelAtLeast(t.kernel, f.minKernel);
}

function included(f: SeccompFilter | undefined, t: SeccompTarget): boolean {
  if (!f) return true;
  if (f.arches?.length && !f.arches.includes(t.arch)) return false;
  if (f.caps?.length && !f.caps.every((c) => t.caps.includes(c))) return false;
  return f.minKernel === undefined || kernelAtLeast(t.kernel, f.minKernel);
}

/**
 * The filter's architectures: the profile's `architectures`, then from `archMap` the host's
 * architecture and its sub-architectures, less those the kernel refuses (subArchesRefused).
 */
export function architecturesOf(p: SeccompProfile, t: Pick<SeccompTarget, 'arch' | 'abis'>): string[] {
  const arches = [...(p.architectures ?? [])];
  const native = NATIVE_TO_SECCOMP[t.arch];
  const mapped = native ? p.archMap?.find((a) => a.architecture === native) : undefined;
  const refused = subArchesRefused(t);
  if (mapped) arches.push(mapped.architecture, ...(mapped.subArchitectures ?? []).filter((a) => !refused.includes(a)));
  return arches;
}

/**
 * The OCI `linux.seccomp` for a container, or undefined when the profile confines nothing (no
 * default action and no rules: dockerd runs such a container without a filter).
 */
export function compileProfile(p: SeccompProfile, t: SeccompTarget): OciSeccomp | undefined {
  if (!p.defaultAction && !p.syscalls?.length) return undefined;
  const out: OciSeccomp = { defaultAction: p.defaultAction ?? '' };
  if (p.defaultErrnoRet !== undefined) out.defaultErrnoRet = p.defaultErrnoRet;
  const arches = architecturesOf(p, t);
  if (arches.length) out.architectures = arches;
  if (p.flags) out.flags = [...p.flags];
  if (p.listenerPath) out.listenerPath = p.listenerPath;
  if (p.listenerMetadata) out.listenerMetadata = p.listenerMetadata;
  const syscalls: OciSyscall[] = [];
  for (const r of p.syscalls ?? []) {
    if (excluded(r.excludes, t) || !included(r.includes, t)) continue;
    const s: OciSyscall = { names: [...(r.names ?? [])], action: r.action };
    if (r.errnoRet !== undefined) s.errnoRet = r.errnoRet;
    if (r.args) s.args = r.args.map((a) => ({ ...a }));
    syscalls.push(s);
  }
  if (syscalls.length) out.syscalls = syscalls;
  return out;
}
