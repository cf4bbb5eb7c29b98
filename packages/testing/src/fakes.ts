/**
 * Small fakes for unit tests of plugins: a host whose features you choose, a container record
 * without an engine, and a start context to call a hook directly.
 */
import {
  StartContext,
  ZERO_TIME,
  generateId,
  initialState,
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

/** A container record shaped like the engine's, for tests that need no engine. */
export function makeContainer(o: ContainerOverrides = {}): ContainerRecord {
  const id = o.ID ?? generateId();
  const Config = { Cmd: ['/bin/true'], Image: '', ...(o.Config ?? {}) };
  const argv = [...(Config.Entrypoint ?? []), ...(Config.Cmd ?? [])];
  return {
    Name: '/test',
    Created: '2026-01-01T00:00:00Z',
    Path: argv[0] ?? '',
    Args: argv.slice(1),
    Image: '',
    NetworkSettings: { Bridge: '', SandboxID: '', SandboxKey: '', Ports: {}, Networks: { bridge: {} } },
    ResolvConfPath: '',
    HostnamePath: '',
    HostsPath: '',
    LogPath: '',
    RestartCount: 0,
    Driver: '',
    Platform: 'linux',
    MountLabel: '',
    ProcessLabel: '',
    AppArmorProfile: '',
    ExecIDs: null,
    Mounts: [],
    ...o,
    ID: id,
    Config,
    HostConfig: { NetworkMode: 'bridge', Runtime: 'runc', LogConfig: { Type: 'json-file', Config: {} }, RestartPolicy: { Name: 'no', MaximumRetryCount: 0 }, ...(o.HostConfig ?? {}) },
    State: { ...initialState(), StartedAt: ZERO_TIME, FinishedAt: ZERO_TIME, ...(o.State ?? {}) },
  };
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
