/**
 * The CRI ↔ engine mapping (pure): a CRI container config in a pod → the engine's create
 * options (cri-dockerd's name and labels, security context, resources, namespaces of the pod),
 * and an engine record → the CRI Container / ContainerStatus (state, times, reason, labels split
 * back from annotations).
 */
import { describe, expect, it } from 'vitest';
import type { ContainerRecord } from '@berth/core';
import { ContainerState, LABEL, NamespaceMode, PodState, containerOf, containerStatusOf, createOptionsOf, defaultPodConfList, dnsOf, labelsOf, portMappingsOf, toNanos, type PodRecord } from '../src/index.js';

const pod = (over: Partial<PodRecord> = {}): PodRecord => ({
  id: 'p'.repeat(64),
  metadata: { name: 'web', uid: 'u1', namespace: 'ns', attempt: 0 },
  state: PodState.READY,
  createdAt: '1',
  labels: {},
  annotations: {},
  hostname: 'web-host',
  logDirectory: '/var/log/pods/u1',
  runtimeHandler: '',
  cgroupParent: '',
  namespaces: { network: NamespaceMode.POD, pid: NamespaceMode.CONTAINER, ipc: NamespaceMode.POD },
  nsPaths: {},
  ...over,
});

const noFile = (p: string): string => {
  throw new Error(`unexpected read of ${p}`);
};

describe('createOptionsOf', () => {
  it("names and labels the container as cri-dockerd does, annotations as annotation.* labels", () => {
    const o = createOptionsOf(pod(), { metadata: { name: 'app', attempt: 2 }, image: { image: 'busybox' }, labels: { tier: 'front' }, annotations: { 'a.b/c': 'd' } }, { image: 'sha256:1', logPath: '/var/log/pods/u1/app/2.log', runtime: '', readFile: noFile });
    expect(o.name).toBe('k8s_app_web_ns_u1_2');
    expect(o.Config.Image).toBe('sha256:1');
    expect(o.Config.Labels).toEqual({
      tier: 'front',
      'annotation.a.b/c': 'd',
      [LABEL.type]: 'container',
      [LABEL.sandboxId]: 'p'.repeat(64),
      [LABEL.name]: 'app',
      [LABEL.attempt]: '2',
      [LABEL.image]: 'busybox',
      [LABEL.logPath]: '/var/log/pods/u1/app/2.log',
    });
    expect(o.Config.Hostname).toBe('web-host');
    expect(o.HostConfig?.NetworkMode).toBe('none');
  });

  it('maps command/args/env/user/mounts/devices, the security context and resources', () => {
    const profile = '{"defaultAction":"SCMP_ACT_ALLOW"}';
    const o = createOptionsOf(
      pod({ runtimeHandler: 'crun', cgroupParent: '/kubepods/pod1' }),
      {
        metadata: { name: 'c' },
        command: ['/bin/sh'],
        args: ['-c', 'true'],
        envs: [{ key: 'A', value: Buffer.from('1') }],
        working_dir: '/w',
        mounts: [{ host_path: '/h', container_path: '/c', readonly: true }],
        devices: [{ host_path: '/dev/null', container_path: '/dev/x', permissions: 'r' }],
        tty: true,
        linux: {
          resources: { cpu_period: '100000', cpu_quota: '50000', cpu_shares: '512', memory_limit_in_bytes: '67108864', oom_score_adj: '100', cpuset_cpus: '0' },
          security_context: {
            run_as_user: { value: '1000' },
            run_as_group: { value: '2000' },
            privileged: false,
            readonly_rootfs: true,
            no_new_privs: true,
            capabilities: { add_capabilities: ['NET_ADMIN'], drop_capabilities: ['ALL'] },
            seccomp: { profile_type: 2, localhost_ref: '/profiles/p.json' },
            apparmor: { profile_type: 2, localhost_ref: 'my-profile' },
            supplemental_groups: ['5'],
          },
        },
      },
      { image: 'sha256:1', logPath: '', runtime: 'crun', readFile: (p) => (p === '/profiles/p.json' ? profile : noFile(p)) },
    );
    expect(o.Config).toMatchObject({ Entrypoint: ['/bin/sh'], Cmd: ['-c', 'true'], Env: ['A=1'], WorkingDir: '/w', User: '1000:2000', Tty: true });
    expect(o.Config.Labels).not.toHaveProperty(LABEL.logPath);
    expect(o.HostConfig).toMatchObject({
      Binds: ['/h:/c:ro'],
      Devices: [{ PathOnHost: '/dev/null', PathInContainer: '/dev/x', CgroupPermissions: 'r' }],
      ReadonlyRootfs: true,
      CapAdd: ['NET_ADMIN'],
      CapDrop: ['ALL'],
      SecurityOpt: [`seccomp=${profile}`, 'apparmor=my-profile', 'no-new-privileges'],
      GroupAdd: ['5'],
      CpuPeriod: 100000,
      CpuQuota: 50000,
      CpuShares: 512,
      Memory: 67108864,
      CpusetCpus: '0',
      OomScoreAdj: 100,
      CgroupParent: '/kubepods/pod1',
      Runtime: 'crun',
    });
    expect(o.HostConfig).not.toHaveProperty('Privileged');
  });

  it('RuntimeDefault seccomp adds no option (the seccomp plugin default); Unconfined says so', () => {
    const sec = (t: number) => createOptionsOf(pod(), { metadata: { name: 'c' }, linux: { security_context: { seccomp: { profile_type: t } } } }, { image: 'x', logPath: '', runtime: '', readFile: noFile }).HostConfig?.SecurityOpt;
    expect(sec(0)).toBeUndefined();
    expect(sec(1)).toEqual(['seccomp=unconfined']);
  });

  it('a host-network pod runs its containers in the host network and UTS namespaces; host IPC/PID likewise', () => {
    const o = createOptionsOf(pod({ namespaces: { network: NamespaceMode.NODE, pid: NamespaceMode.NODE, ipc: NamespaceMode.NODE } }), { metadata: { name: 'c' } }, { image: 'x', logPath: '', runtime: '', readFile: noFile });
    expect(o.HostConfig).toMatchObject({ NetworkMode: 'host', UTSMode: 'host', PidMode: 'host', IpcMode: 'host' });
    expect(o.Config.Hostname).toBeUndefined();
  });

  it("a pod sharing its PID namespace (pid: POD) labels its containers to join it, unless one asks for its own or the host's", () => {
    const joins = (podPid: number, ns?: Record<string, number | string>) =>
      createOptionsOf(pod({ namespaces: { network: NamespaceMode.POD, pid: podPid, ipc: NamespaceMode.POD } }), { metadata: { name: 'c' }, ...(ns ? { linux: { security_context: { namespace_options: ns } } } : {}) }, { image: 'x', logPath: '', runtime: '', readFile: noFile }).Config?.Labels?.[LABEL.pidNamespace];
    expect(joins(NamespaceMode.POD)).toBe('pod');
    expect(joins(NamespaceMode.POD, { pid: NamespaceMode.POD })).toBe('pod');
    expect(joins(NamespaceMode.POD, { pid: NamespaceMode.CONTAINER })).toBeUndefined();
    expect(joins(NamespaceMode.POD, { pid: NamespaceMode.NODE })).toBeUndefined();
    expect(joins(NamespaceMode.CONTAINER)).toBeUndefined();
    expect(joins(NamespaceMode.CONTAINER, { pid: NamespaceMode.POD })).toBeUndefined();
    expect(joins(NamespaceMode.POD, { pid: NamespaceMode.TARGET, target_id: 'abc' })).toBeUndefined();
  });

  it("pid: TARGET (an ephemeral container) joins the target container's PID namespace; without a target_id it is invalid", () => {
    const of = (ns: Record<string, unknown>) => createOptionsOf(pod(), { metadata: { name: 'dbg' }, linux: { security_context: { namespace_options: ns } } }, { image: 'x', logPath: '', runtime: '', readFile: noFile });
    expect(of({ pid: NamespaceMode.TARGET, target_id: 'abc123' }).HostConfig?.PidMode).toBe('container:abc123');
    expect(() => of({ pid: NamespaceMode.TARGET, target_id: '' })).toThrow(TypeError);
  });

  it("gives each container the pod's DNS config (servers, searches, options); no searches = no search line; none = the host's", () => {
    const dns = dnsOf({ servers: ['10.96.0.10'], searches: ['ns.svc.cluster.local', 'cluster.local'], options: ['ndots:5'] });
    expect(createOptionsOf(pod({ dns }), { metadata: { name: 'c' } }, { image: 'x', logPath: '', runtime: '', readFile: noFile }).HostConfig).toMatchObject({ Dns: ['10.96.0.10'], DnsSearch: ['ns.svc.cluster.local', 'cluster.local'], DnsOptions: ['ndots:5'] });
    const serversOnly = createOptionsOf(pod({ dns: dnsOf({ servers: ['1.1.1.1'] }) }), { metadata: { name: 'c' } }, { image: 'x', logPath: '', runtime: '', readFile: noFile }).HostConfig!;
    expect([serversOnly.Dns, serversOnly.DnsSearch, serversOnly.DnsOptions]).toEqual([['1.1.1.1'], ['.'], undefined]);
    expect(dnsOf({ servers: [], searches: [], options: [] })).toBeUndefined();
    const plain = createOptionsOf(pod(), { metadata: { name: 'c' } }, { image: 'x', logPath: '', runtime: '', readFile: noFile }).HostConfig!;
    expect([plain.Dns, plain.DnsSearch, plain.DnsOptions]).toEqual([undefined, undefined, undefined]);
  });

  it('refuses a config without a container name', () => {
    expect(() => createOptionsOf(pod(), { metadata: {} }, { image: 'x', logPath: '', runtime: '', readFile: noFile })).toThrow(TypeError);
  });
});

describe('pod host ports', () => {
  it('maps port_mappings with a host_port to CNI portMappings (protocol names, host IP); container-port-only ones are dropped', () => {
    expect(
      portMappingsOf([
        { protocol: 0, container_port: 80, host_port: 8080 },
        { protocol: 1, container_port: 53, host_port: 5353, host_ip: '127.0.0.1' },
        { protocol: 2, container_port: 9, host_port: 9 },
        { protocol: 0, container_port: 443 },
      ]),
    ).toEqual([
      { hostPort: 8080, containerPort: 80, protocol: 'tcp' },
      { hostPort: 5353, containerPort: 53, protocol: 'udp', hostIP: '127.0.0.1' },
      { hostPort: 9, containerPort: 9, protocol: 'sctp' },
    ]);
    expect(() => portMappingsOf([{ protocol: 7, container_port: 80, host_port: 80 }])).toThrow(TypeError);
    expect(() => portMappingsOf([{ protocol: 0, container_port: 0, host_port: 80 }])).toThrow(TypeError);
  });

  it("berth's own pod network adds the reference portmap (portMappings capability) only for a pod with host ports", () => {
    expect(defaultPodConfList('b0', '10.88.0.0/16', '/ipam').plugins.map((p) => p.type)).toEqual(['bridge']);
    const withPorts = defaultPodConfList('b0', '10.88.0.0/16', '/ipam', { hostPorts: true }).plugins;
    expect(withPorts.map((p) => p.type)).toEqual(['bridge', 'portmap']);
    expect(withPorts[1]!.capabilities).toEqual({ portMappings: true });
  });
});

describe('engine record → CRI', () => {
  const rec = (status: string, over: Partial<ContainerRecord['State']> = {}): ContainerRecord =>
    ({
      ID: 'c'.repeat(64),
      Name: '/k8s_app_web_ns_u1_0',
      Created: '2026-12-06T08:00:00.123456789Z',
      Image: 'sha256:abc',
      Config: { Image: 'sha256:abc', Labels: { tier: 'x', 'annotation.k': 'v', [LABEL.type]: 'container', [LABEL.sandboxId]: 'p1', [LABEL.name]: 'app', [LABEL.attempt]: '0', [LABEL.image]: 'busybox:latest', [LABEL.logPath]: '/l/0.log' } },
      HostConfig: { Binds: ['/h:/c:ro'] },
      State: { Status: status, Running: status === 'running', Paused: false, Restarting: false, OOMKilled: false, Dead: false, Pid: 0, ExitCode: 0, Error: '', StartedAt: '2026-12-06T08:00:01Z', FinishedAt: '0001-01-01T00:00:00Z', ...over },
    }) as unknown as ContainerRecord;

  it('converts RFC 3339 times to nanoseconds, the zero time to 0', () => {
    expect(toNanos('2026-12-06T08:00:00.123456789Z')).toBe('1796544000123456789');
    expect(toNanos('0001-01-01T00:00:00Z')).toBe('0');
    expect(toNanos('garbage')).toBe('0');
  });

  it('splits labels and annotations back, without berth/cri-dockerd bookkeeping labels', () => {
    expect(labelsOf(rec('running'))).toEqual({ labels: { tier: 'x' }, annotations: { k: 'v' } });
  });

  it('maps the states, times and reason', () => {
    expect(containerOf(rec('created'))).toMatchObject({ state: ContainerState.CREATED, pod_sandbox_id: 'p1', metadata: { name: 'app', attempt: 0 }, image: { image: 'busybox:latest' }, image_ref: 'sha256:abc' });
    expect(containerOf(rec('running')).state).toBe(ContainerState.RUNNING);
    expect(containerOf(rec('paused')).state).toBe(ContainerState.RUNNING);
    const done = containerStatusOf(rec('exited', { ExitCode: 1, FinishedAt: '2026-12-06T08:00:02Z' }));
    expect(done).toMatchObject({ state: ContainerState.EXITED, exit_code: 1, reason: 'Error', started_at: '1796544001000000000', finished_at: '1796544002000000000', log_path: '/l/0.log', mounts: [{ host_path: '/h', container_path: '/c', readonly: true }] });
    expect(containerStatusOf(rec('exited', { OOMKilled: true, ExitCode: 137 })).reason).toBe('OOMKilled');
    expect(containerStatusOf(rec('exited')).reason).toBe('Completed');
    expect(containerStatusOf(rec('created'))).toMatchObject({ started_at: '0', finished_at: '0', exit_code: 0 });
  });
});
