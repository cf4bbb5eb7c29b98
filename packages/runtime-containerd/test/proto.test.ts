/**
 * The containerd backend's wire format, without containerd: requests encoded through berth's
 * own .proto files must be byte for byte what containerd's field numbers give (the expected
 * bytes are built here by hand from containerd's numbers), responses decode into the fields
 * the backend reads, and the mapping helpers (Any type URLs, runc shim options, timestamps,
 * task statuses, gRPC codes → typed errors, labels) say what containerd means.
 */
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { errorKind } from '@berth/core';
import {
  LABEL,
  TYPE_URL,
  containerdServices,
  exitInfoOf,
  fromGrpcError,
  labelsOf,
  processAny,
  resourcesAny,
  runcOptionsAny,
  runtimeStatusOf,
  specAny,
  stdioOf,
  timestampToRfc3339,
} from '../src/index.js';

// ---- a hand encoder of protobuf's wire format, for the expected bytes
const varint = (n: number | bigint): number[] => {
  let v = BigInt(n);
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return out;
};
const tag = (field: number, wire: number): number[] => varint((field << 3) | wire);
const str = (field: number, s: string | Buffer): number[] => {
  const b = typeof s === 'string' ? Buffer.from(s) : s;
  return [...tag(field, 2), ...varint(b.length), ...b];
};
const msg = (field: number, body: number[]): number[] => [...tag(field, 2), ...varint(body.length), ...body];
const uint = (field: number, n: number): number[] => [...tag(field, 0), ...varint(n)];
const bytes = (a: number[]): Buffer => Buffer.from(a);

type Method = { requestSerialize(v: unknown): Buffer; responseDeserialize(b: Buffer): unknown; path: string };
const method = (svc: grpc.ServiceClientConstructor, name: string): Method => svc.service[name] as unknown as Method;

describe('requests: berth\'s protos encode containerd\'s field numbers', () => {
  const { Tasks, Containers } = containerdServices();

  it('each call goes to containerd\'s service path', () => {
    expect(method(Tasks, 'Create').path).toBe('/containerd.services.tasks.v1.Tasks/Create');
    expect(method(Tasks, 'Wait').path).toBe('/containerd.services.tasks.v1.Tasks/Wait');
    expect(method(Tasks, 'DeleteProcess').path).toBe('/containerd.services.tasks.v1.Tasks/DeleteProcess');
    expect(method(Containers, 'Create').path).toBe('/containerd.services.containers.v1.Containers/Create');
    expect(method(containerdServices().Version, 'Version').path).toBe('/containerd.services.version.v1.Version/Version');
  });

  it('CreateTaskRequest: container_id 1, stdin 4, stdout 5, stderr 6, terminal 7, options 9', () => {
    const options = { type_url: 'x', value: Buffer.from([1]) };
    const got = method(Tasks, 'Create').requestSerialize({ container_id: 'c1', stdin: '/i', stdout: '/o', stderr: '/e', terminal: true, options });
    const any = [...str(1, 'x'), ...str(2, Buffer.from([1]))];
    expect(got).toEqual(bytes([...str(1, 'c1'), ...str(4, '/i'), ...str(5, '/o'), ...str(6, '/e'), ...uint(7, 1), ...msg(9, any)]));
  });

  it('ExecProcessRequest: container_id 1, stdout 3, stderr 4, terminal 5, spec 6, exec_id 7', () => {
    const spec = processAny({ args: ['true'], cwd: '/' } as never);
    const got = method(Tasks, 'Exec').requestSerialize({ container_id: 'c', stdout: '/o', stderr: '/e', terminal: false, spec, exec_id: 'e1' });
    const any = [...str(1, TYPE_URL.process), ...str(2, spec.value)];
    // protobufjs writes a false bool that was given (Go leaves it off); both decode the same.
    expect(got).toEqual(bytes([...str(1, 'c'), ...str(3, '/o'), ...str(4, '/e'), ...uint(5, 0), ...msg(6, any), ...str(7, 'e1')]));
  });

  it('KillRequest: container_id 1, exec_id 2, signal 3, all 4', () => {
    const got = method(Tasks, 'Kill').requestSerialize({ container_id: 'c', exec_id: 'e', signal: 15, all: true });
    expect(got).toEqual(bytes([...str(1, 'c'), ...str(2, 'e'), ...uint(3, 15), ...uint(4, 1)]));
  });

  it('ResizePtyRequest: width 3, height 4; CloseIORequest: stdin 3; UpdateTaskRequest: resources 2', () => {
    expect(method(Tasks, 'ResizePty').requestSerialize({ container_id: 'c', width: 80, height: 24 })).toEqual(bytes([...str(1, 'c'), ...uint(3, 80), ...uint(4, 24)]));
    expect(method(Tasks, 'CloseIO').requestSerialize({ container_id: 'c', exec_id: 'e', stdin: true })).toEqual(bytes([...str(1, 'c'), ...str(2, 'e'), ...uint(3, 1)]));
    const res = resourcesAny({ pids: { limit: 5 } });
    expect(method(Tasks, 'Update').requestSerialize({ container_id: 'c', resources: res })).toEqual(
      bytes([...str(1, 'c'), ...msg(2, [...str(1, TYPE_URL.resources), ...str(2, res.value)])]),
    );
  });

  it('Container: id 1, labels 2 (map entries key 1 value 2), runtime 4 (name 1), spec 5', () => {
    const spec = specAny({ ociVersion: '1.2.0' });
    const got = method(Containers, 'Create').requestSerialize({ container: { id: 'c', labels: { k: 'v' }, runtime: { name: 'io.containerd.runc.v2' }, spec } });
    const container = [...str(1, 'c'), ...msg(2, [...str(1, 'k'), ...str(2, 'v')]), ...msg(4, str(1, 'io.containerd.runc.v2')), ...msg(5, [...str(1, TYPE_URL.spec), ...str(2, spec.value)])];
    expect(got).toEqual(bytes(msg(1, container)));
  });

  it('runc shim options (containerd.runc.v1.Options): no_pivot_root 1, io_uid 4, io_gid 5, binary_name 6', () => {
    const any = runcOptionsAny({ noPivotRoot: true, ioUid: 100000, ioGid: 100000, binaryName: '/usr/sbin/runc' });
    expect(any.type_url).toBe('containerd.runc.v1.Options');
    expect(any.value).toEqual(bytes([...uint(1, 1), ...uint(4, 100000), ...uint(5, 100000), ...str(6, '/usr/sbin/runc')]));
    // Defaults are proto3 zero values: nothing on the wire.
    expect(runcOptionsAny({}).value).toEqual(Buffer.alloc(0));
  });
});

describe('responses: containerd\'s bytes decode into the fields the backend reads', () => {
  const { Tasks, Containers } = containerdServices();

  it('GetResponse.process: pid 3, status 4 (enum by name), exit_status 9, exited_at 10', () => {
    const ts = [...uint(1, 1_700_000_000), ...uint(2, 123_456_789)];
    const proc = [...str(1, 'c'), ...str(2, 'c'), ...uint(3, 4242), ...uint(4, 3), ...str(6, '/o'), ...uint(9, 137), ...msg(10, ts)];
    const got = method(Tasks, 'Get').responseDeserialize(bytes(msg(1, proc))) as { process: Record<string, unknown> };
    expect(got.process).toMatchObject({ container_id: 'c', pid: 4242, status: 'STOPPED', stdout: '/o', exit_status: 137, exited_at: { seconds: '1700000000', nanos: 123456789 } });
  });

  it('WaitResponse: exit_status 1, exited_at 2; CreateTaskResponse: pid 2; StartResponse: pid 1', () => {
    expect(method(Tasks, 'Wait').responseDeserialize(bytes([...uint(1, 42), ...msg(2, uint(1, 5))]))).toMatchObject({ exit_status: 42, exited_at: { seconds: '5', nanos: 0 } });
    expect(method(Tasks, 'Create').responseDeserialize(bytes([...str(1, 'c'), ...uint(2, 99)]))).toMatchObject({ container_id: 'c', pid: 99 });
    expect(method(Tasks, 'Start').responseDeserialize(bytes(uint(1, 7)))).toMatchObject({ pid: 7 });
  });

  it('ListContainersResponse: containers 1 with their labels', () => {
    const c = [...str(1, 'abc'), ...msg(2, [...str(1, LABEL.tty), ...str(2, 'true')])];
    const got = method(Containers, 'List').responseDeserialize(bytes(msg(1, c))) as { containers: { id: string; labels: Record<string, string> }[] };
    expect(got.containers.map((x) => [x.id, x.labels])).toEqual([['abc', { [LABEL.tty]: 'true' }]]);
  });
});

describe('mapping', () => {
  it('the spec, a process and resources travel as JSON under containerd\'s runtime-spec type URLs', () => {
    const spec = { ociVersion: '1.2.0', root: { path: '/var/lib/berth/rootfs' } };
    const any = specAny(spec);
    expect(any.type_url).toBe('types.containerd.io/opencontainers/runtime-spec/1/Spec');
    expect(JSON.parse(any.value.toString())).toEqual(spec);
    expect(processAny({ args: ['sh'], cwd: '/' } as never).type_url).toBe('types.containerd.io/opencontainers/runtime-spec/1/Process');
    expect(resourcesAny({}).type_url).toBe('types.containerd.io/opencontainers/runtime-spec/1/LinuxResources');
  });

  it('timestamps become RFC 3339 with nanoseconds; an unset one is null (then the exit time is now)', () => {
    expect(timestampToRfc3339({ seconds: '1700000000', nanos: 5 })).toBe('2023-11-14T22:13:20.000000005Z');
    expect(timestampToRfc3339({ seconds: 0, nanos: 0 })).toBeNull();
    expect(timestampToRfc3339(null)).toBeNull();
    expect(exitInfoOf('c', 137, null, () => 'NOW')).toEqual({ id: 'c', exitCode: 137, oomKilled: false, exitedAt: 'NOW' });
    expect(exitInfoOf('c', 3, { seconds: 1, nanos: 0 }, () => 'NOW', 'e1')).toEqual({ id: 'c', execId: 'e1', exitCode: 3, oomKilled: false, exitedAt: '1970-01-01T00:00:01Z' });
  });

  it('task statuses map onto berth\'s runtime statuses', () => {
    expect(['CREATED', 'RUNNING', 'PAUSED', 'PAUSING', 'STOPPED', 'UNKNOWN'].map((s) => runtimeStatusOf(s as never))).toEqual([
      'created',
      'running',
      'paused',
      'paused',
      'stopped',
      'stopped',
    ]);
  });

  it('gRPC codes become typed errors (the HTTP status follows the kind), the message names the call', () => {
    const e = (code: grpc.status) => fromGrpcError({ code, details: 'boom' }, 'kill task c');
    expect(errorKind(e(grpc.status.NOT_FOUND))).toBe('NotFound');
    expect(errorKind(e(grpc.status.ALREADY_EXISTS))).toBe('Conflict');
    expect(errorKind(e(grpc.status.FAILED_PRECONDITION))).toBe('Conflict');
    expect(errorKind(e(grpc.status.INVALID_ARGUMENT))).toBe('InvalidParameter');
    expect(errorKind(e(grpc.status.UNAVAILABLE))).toBe('Unavailable');
    expect(errorKind(e(grpc.status.UNKNOWN))).toBe('System');
    expect(e(grpc.status.UNKNOWN).message).toBe('containerd: kill task c: boom');
  });

  it('labels carry the log and stdio settings to a restarted daemon', () => {
    const created = labelsOf({
      id: 'c',
      spec: {},
      runtime: 'runc',
      runtimeArgs: [],
      rootUid: 0,
      rootGid: 0,
      stdio: { tty: false, openStdin: true, stdinOnce: true },
      log: { path: '/d/c-json.log', maxSize: 1024, maxFile: 3 },
    } as never);
    const back = labelsOf({ ...created.raw, 'other.label': 'x' });
    expect(back).toEqual(created);
    expect(back).toMatchObject({ logPath: '/d/c-json.log', maxSize: 1024, maxFile: 3, tty: false, openStdin: true, stdinOnce: true });
    expect(back.raw).not.toHaveProperty('other.label');
  });

  it('FIFO paths: no stdin unless open, no stderr with a terminal, execs apart from the init', () => {
    expect(stdioOf('/x', '', { tty: false, openStdin: false })).toEqual({ stdout: '/x/init-stdout', stderr: '/x/init-stderr' });
    expect(stdioOf('/x', 'e1', { tty: true, openStdin: true })).toEqual({ stdin: '/x/exec-e1-stdin', stdout: '/x/exec-e1-stdout' });
  });
});
