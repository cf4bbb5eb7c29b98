/**
 * Small fakes for unit tests of plugins: a host whose features you choose, a container record
 * without an engine, and a start context to call a hook directly.
 */
import {
  StartContext,
  generateId,
  newContainerRecord,
  withHostConfigDefaults,
  type ContainerRecord,
  type EngineInfo,
  type Host,
  type HostFeatures,
} from '@berth/core';

/** IHost with the features you say (default: a plain cgroup v2 host without AppArmor, SELinux or CRIU). */
export class FakeHost implements Host {
  readonly probes: number[] = [];
  constructor(private readonly f: Partial<HostFeatures> = {}) {}
  async features(): Promise<HostFeatures> {
    this.probes.push(Date.now());
    return { apparmor: false, seccomp: true, selinux: false, userns: true, cgroupVersion: 2, criu: false, kernel: '6.1.0-fake', ...this.f };
  }
}

export type ContainerOverrides = Partial<Omit<ContainerRecord, 'Config' | 'HostConfig' | 'State'>> & {
  Config?: Partial<ContainerRecord['Config']>;
  HostConfig?: Partial<ContainerRecord['HostConfig']>;
  State?: Partial<ContainerRecord['State']>;
};

/** A container record shaped like the engine's (core's `newContainerRecord`), for tests that need no engine. */
export function makeContainer(o: ContainerOverrides = {}): ContainerRecord {
  const { Config: config, HostConfig: hostConfig, State: state, ...rest } = o;
  const rec = newContainerRecord({
    Name: '/test',
    Created: '2026-01-01T00:00:00Z',
    ...rest,
    ID: o.ID ?? generateId(),
    Config: { Cmd: ['/bin/true'], Image: '', ...(config ?? {}) },
    HostConfig: withHostConfigDefaults(hostConfig ?? {}, 'runc'),
  });
  Object.assign(rec.State, state ?? {});
  return rec;
}

/** A StartContext for calling a hook directly: `await engine.hooks.specBuild.promise(spec, startContext(rec))`. */
export function startContext(container: ContainerRecord, opts: { rootfsPath?: string; engine?: Partial<EngineInfo> } = {}): StartContext {
  const info: EngineInfo = {
    dataRoot: '/var/lib/berth',
    execRoot: '/run/berth',
    experimental: false,
    containerDir: (id: string) => `/var/lib/berth/containers/${id}`,
    ...(opts.engine ?? {}),
  };
  const ctx = new StartContext(container, info);
  ctx.rootfsPath = opts.rootfsPath ?? container.BaseFS;
  return ctx;
}
