/** A scripted in-memory EnginePort for route tests (no engine, no root). */
import { NotFoundError, newContainerRecord, newNetworkSettings, type ContainerRecord } from '@berth/core';
import type { EnginePort, DaemonFacts, EventMessage, ExecCreateRequest, ExecInspect } from '../../src/port.js';

export function facts(over: Partial<DaemonFacts> = {}): DaemonFacts {
  return {
    id: 'ABCD:EFGH',
    dataRoot: '/tmp/berth-test',
    execRoot: '/tmp/berth-test-exec',
    experimental: false,
    liveRestore: false,
    defaultRuntime: 'runc',
    runtimes: { runc: { path: '/usr/sbin/runc' } },
    securityOptions: ['name=seccomp,profile=builtin'],
    storageDriver: 'vfs',
    loggingDriver: 'json-file',
    cgroupDriver: 'cgroupfs',
    cgroupVersion: '1',
    plugins: [],
    debug: false,
    labels: [],
    ...over,
  };
}

/** A record as core's create makes it (newContainerRecord), put in `status`; `over` wins. */
export function record(id: string, name: string, status: ContainerRecord['State']['Status'], over: Partial<ContainerRecord> = {}): ContainerRecord {
  const rec = newContainerRecord({
    ID: id,
    Name: `/${name}`,
    Created: '2026-11-28T07:00:00.000000000Z',
    Config: { Image: 'busybox', Cmd: ['sh', '-c', 'true'], Labels: {} },
    HostConfig: { NetworkMode: 'none' },
    Image: 'sha256:' + 'a'.repeat(64),
    NetworkSettings: newNetworkSettings(),
    Driver: 'vfs',
    ...over,
  });
  if (!over.State) {
    Object.assign(rec.State, {
      Status: status,
      Running: status === 'running' || status === 'paused',
      Paused: status === 'paused',
      Pid: status === 'running' ? 1234 : 0,
    });
  }
  return rec;
}

export function fakePort(containers: ContainerRecord[] = [], over: Partial<DaemonFacts> = {}): EnginePort & { emit(ev: EventMessage): void } {
  const listeners = new Set<(ev: EventMessage) => void>();
  const past: EventMessage[] = [];
  const find = async (idOrName: string) => {
    const c = containers.find((x) => x.ID === idOrName || x.Name === `/${idOrName}` || x.ID.startsWith(idOrName));
    if (!c) throw new NotFoundError(`No such container: ${idOrName}`);
    return c;
  };
  const unsupported = async (): Promise<never> => {
    throw new Error('not scripted');
  };
  return {
    facts: () => facts(over),
    containers: {
      // as the port promises: newest first (equal times by ID, descending), `view` instead of the record
      list: async <T>(keep?: (c: Readonly<ContainerRecord>) => boolean, view?: (c: Readonly<ContainerRecord>) => T): Promise<T[]> => {
        const kept = (keep ? containers.filter(keep) : [...containers]).sort((a, b) => Date.parse(b.Created) - Date.parse(a.Created) || (a.ID < b.ID ? 1 : -1));
        return view ? kept.map(view) : (kept as unknown as T[]);
      },
      inspect: find,
      create: unsupported,
      start: unsupported,
      stop: unsupported,
      restart: unsupported,
      kill: unsupported,
      wait: unsupported,
      remove: unsupported,
    },
    images: { count: async () => 3, resolve: async () => null },
    events: {
      subscribe(since, listener) {
        listeners.add(listener);
        return { past: past.filter((e) => since === null || e.timeNano >= since), unsubscribe: () => listeners.delete(listener) };
      },
    },
    emit(ev) {
      past.push(ev);
      for (const l of listeners) l(ev);
    },
  };
}

/** The ExecInspect a fake exec port keeps for `req` (not running yet). */
export function execInspect(id: string, containerId: string, req: ExecCreateRequest): ExecInspect {
  return {
    ID: id,
    Running: false,
    ExitCode: null,
    ProcessConfig: { tty: !!req.Tty, entrypoint: req.Cmd[0], arguments: req.Cmd.slice(1), privileged: false, user: '' },
    OpenStdin: !!req.AttachStdin,
    OpenStdout: !!req.AttachStdout,
    OpenStderr: !!req.AttachStderr,
    CanRemove: false,
    ContainerID: containerId,
    DetachKeys: req.DetachKeys ?? '',
    Pid: 0,
  };
}
