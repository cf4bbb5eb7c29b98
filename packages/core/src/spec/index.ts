export { buildOciSpec, checkInitBinary, wantsInit, INIT_PATH_IN_CONTAINER, DEFAULT_CGROUP_PARENT, type SpecBuildInput } from './build.js';
export { applyOpts, composeOpts, type SpecOpt } from './opts.js';
export {
  OCI_VERSION,
  DEFAULT_PATH_ENV,
  DEFAULT_SHM_SIZE,
  DEFAULT_CPU_PERIOD,
  DEFAULT_MASKED_PATHS,
  DEFAULT_READONLY_PATHS,
  defaultDeviceCgroupRules,
  defaultMounts,
  defaultSpec,
} from './defaults.js';
export {
  ALL_CAPABILITIES,
  DEFAULT_CAPABILITIES,
  grantableCapabilities,
  knownCapabilities,
  normalizeCapability,
  parseCapabilities,
  withCapabilities,
  type CapabilityOptions,
} from './caps.js';
export {
  parsePasswd,
  parseGroup,
  resolveUser,
  resolveUserFromEntries,
  withUser,
  type PasswdEntry,
  type GroupEntry,
} from './user.js';
export { resolveInRoot } from './rootfs.js';
export {
  parseBind,
  parseApiMount,
  parseTmpfs,
  parseUserMounts,
  cleanPath,
  mergeTmpfsOptions,
  formatTmpfsSize,
  isValidMountMode,
  toOciMount,
  engineBind,
  sortMountsByDepth,
  withMounts,
  PROPAGATION_MODES,
  type ParsedMount,
  type MountsOptions,
} from './mounts.js';
export {
  parseDevice,
  parseDeviceCgroupRule,
  isValidDevicePermissions,
  devicesFromMapping,
  hostDevices,
  splitDevNumber,
  withDevices,
  type HostDevice,
  type DevicesOptions,
} from './devices.js';
export {
  validateResources,
  withResources,
  resolveBlockIODevices,
  parseUlimits,
  withRlimits,
  isValidCpuset,
  ULIMIT_NAMES,
  type BlockIODevices,
} from './resources.js';
export { validateSysctls, withSysctls, defaultNetworkSysctls, IPC_SYSCTLS, type SysctlNamespaces } from './sysctl.js';
export { parseSecurityOpts, parseGoBool, type SecurityOptions } from './security.js';
export { planNamespaces, withNamespace, withNamespaces, type NamespaceMode, type NamespacePlan, type JoinPaths } from './namespaces.js';
export {
  containerEnv,
  replaceOrAppendEnv,
  withProcess,
  withHostname,
  withRoot,
  withSystemPaths,
  withCgroupsPath,
  withAnnotations,
  type ProcessOptions,
} from './process.js';
export { probeHost, checkPropagation, type SpecHostInfo } from './host.js';
