/**
 * Bad requests: each gets the right 4xx with Docker's {"message"} body, never a 500, and the
 * daemon keeps serving (a /_ping after every one). First the HTTP layer over a fake port
 * (the engine is never reached), then the table of bad values over a real Engine with
 * FakeRuntime, each with dockerd's status and message and nothing created or changed.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import { createTestEngine, validateDefinition, type TestEngine } from '@berth/testing';
import { buildApp, enginePort, openInjector, apiRoutes, type Injector, type InjectRequest } from '../src/index.js';
import { MAX_JSON_DEPTH } from '../src/http.js';
import { facts, fakePort, record } from './helpers/fake-port.js';

const ID = 'a'.repeat(64);
const calls: string[] = [];
const port = fakePort([record(ID, 'web', 'running', { Config: { Image: 'busybox', OpenStdin: false, Labels: {} } })]);
for (const k of ['create', 'start', 'stop', 'restart', 'kill', 'wait', 'remove'] as const) {
  (port.containers as unknown as Record<string, unknown>)[k] = async () => {
    calls.push(k);
    throw new Error('the engine must not be reached by a bad request');
  };
}

const json = (body: unknown): Pick<InjectRequest, 'body' | 'headers'> => ({ body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } });

const cases: Array<[string, InjectRequest, number]> = [
  ['malformed JSON', { method: 'POST', url: '/containers/create', ...{ body: '{"Image": "busybox",', headers: { 'Content-Type': 'application/json' } } }, 400],
  ['JSON array body', { method: 'POST', url: '/containers/create', ...json(['busybox']) }, 400],
  ['JSON scalar body', { method: 'POST', url: '/containers/create', ...json(42) }, 400],
  ['empty create body', { method: 'POST', url: '/containers/create', headers: { 'Content-Type': 'application/json' } }, 400],
  ['wrong Content-Type', { method: 'POST', url: '/containers/create', body: '{"Image":"busybox"}', headers: { 'Content-Type': 'text/plain' } }, 400],
  ['Image of the wrong type', { method: 'POST', url: '/containers/create', ...json({ Image: 42 }) }, 400],
  ['Env not a list', { method: 'POST', url: '/containers/create', ...json({ Image: 'busybox', Env: 'A=B' }) }, 400],
  ['Cmd with a number', { method: 'POST', url: '/containers/create', ...json({ Image: 'busybox', Cmd: ['sh', 1] }) }, 400],
  ['Labels with a non-string value', { method: 'POST', url: '/containers/create', ...json({ Image: 'busybox', Labels: { a: 1 } }) }, 400],
  ['Tty as a string', { method: 'POST', url: '/containers/create', ...json({ Image: 'busybox', Tty: 'yes' }) }, 400],
  ['HostConfig as a string', { method: 'POST', url: '/containers/create', ...json({ Image: 'busybox', HostConfig: 'none' }) }, 400],
  ['negative Memory', { method: 'POST', url: '/containers/create', ...json({ Image: 'busybox', HostConfig: { Memory: -5 } }) }, 400],
  ['unknown restart policy', { method: 'POST', url: '/containers/create', ...json({ Image: 'busybox', HostConfig: { RestartPolicy: { Name: 'sometimes' } } }) }, 400],
  ['empty Env entry', { method: 'POST', url: '/containers/create', ...json({ Image: 'busybox', Env: ['=x'] }) }, 400],
  ['no Image', { method: 'POST', url: '/containers/create', ...json({ Cmd: ['true'] }) }, 400],
  ['invalid name', { method: 'POST', url: '/containers/create?name=bad%20name!', ...json({ Image: 'busybox' }) }, 400],
  ['one-character name', { method: 'POST', url: '/containers/create?name=a', ...json({ Image: 'busybox' }) }, 400],
  ['name with a slash inside', { method: 'POST', url: '/containers/create?name=a/b', ...json({ Image: 'busybox' }) }, 400],
  ['huge body', { method: 'POST', url: '/containers/create', body: Buffer.alloc(5 * 1024 * 1024, 0x20), headers: { 'Content-Type': 'application/json' } }, 413],
  ['start with a body on API 1.44', { method: 'POST', url: '/v1.44/containers/web/start', ...json({ Binds: ['/:/host'] }) }, 400],
  ['bad signal name on kill', { method: 'POST', url: '/containers/web/kill?signal=SIGNOPE' }, 400],
  ['signal number out of range', { method: 'POST', url: '/containers/web/kill?signal=99' }, 400],
  ['bad signal on stop', { method: 'POST', url: '/containers/web/stop?signal=bogus' }, 400],
  ['negative timeout', { method: 'POST', url: '/containers/web/stop?t=-5' }, 400],
  ['non-numeric timeout', { method: 'POST', url: '/containers/web/restart?t=soon' }, 400],
  ['bad wait condition', { method: 'POST', url: '/containers/web/wait?condition=forever' }, 400],
  ['unknown API version (too new)', { url: '/v1.99/containers/json' }, 400],
  ['unknown API version (too old)', { url: '/v1.12/containers/json' }, 400],
  // (not under /containers/: DELETE /containers/{id:.*} matches every path there, so another method is a 405 as in dockerd)
  ['unknown route', { url: '/exec/abc/teleport' }, 404],
  ['unknown top-level route', { url: '/v1.44/flux-capacitor' }, 404],
  ['wrong method', { method: 'PUT', url: '/containers/json' }, 405],
  ['malformed filters', { url: '/containers/json?filters=%7Bnot-json' }, 400],
  ['unknown filter key', { url: '/containers/json?filters=' + encodeURIComponent('{"colour":["red"]}') }, 400],
  ['bad status filter', { url: '/containers/json?filters=' + encodeURIComponent('{"status":["sleeping"]}') }, 400],
  ['bad exited filter', { url: '/containers/json?all=1&filters=' + encodeURIComponent('{"exited":["zero"]}') }, 400],
  ['non-numeric limit', { url: '/containers/json?limit=ten' }, 400],
  ['logs without streams', { url: '/containers/web/logs' }, 400],
  ['logs with a bad tail', { url: '/containers/web/logs?stdout=1&tail=lots' }, 400],
  ['logs with a bad since', { url: '/containers/web/logs?stdout=1&since=yesterday' }, 400],
  ['events until before since', { url: '/events?since=200&until=100' }, 400],
  ['events with a bad filter', { url: '/events?filters=' + encodeURIComponent('{"type":"container"}') }, 400],
  ['rename to an invalid name', { method: 'POST', url: '/containers/web/rename?name=no%20way' }, 400],
  ['resize with negative size', { method: 'POST', url: '/containers/web/resize?h=-1&w=80' }, 400],
  ['exec without Cmd', { method: 'POST', url: '/containers/web/exec', ...json({ AttachStdout: true }) }, 400],
  ['exec with bad detach keys', { method: 'POST', url: '/containers/web/exec', ...json({ Cmd: ['sh'], DetachKeys: 'ctrl-' }) }, 400],
  ['attach with bad detach keys', { method: 'POST', url: '/containers/web/attach?stream=1&detachKeys=ctrl-%C3%A9' }, 400],
  ['unknown container', { url: '/containers/nothing-here/json' }, 404],
  ['path traversal in the route', { url: '/containers/..%2F..%2Fetc%2Fpasswd/json' }, 404],
  ['malformed percent-encoding', { url: '/containers/%E0%A4%A/json' }, 404],
  ['invalid platform', { method: 'POST', url: '/containers/create?platform=windows/amd64', ...json({ Image: 'busybox' }) }, 400],
];

describe('bad input', () => {
  let inj: Injector;
  beforeAll(async () => {
    inj = await openInjector(buildApp({ routes: apiRoutes(port) }));
  });
  afterAll(async () => {
    await inj.close();
  });

  it.each(cases)('%s', async (_name, req, status) => {
    const r = await inj.request(req);
    expect(r.statusCode).toBe(status);
    const body = r.json();
    expect(validateDefinition('ErrorResponse', body)).toBe('');
    expect(typeof body.message).toBe('string');
    expect(body.message.length).toBeGreaterThan(0);
    const ping = await inj.request({ url: '/_ping' });
    expect(ping.statusCode).toBe(200);
    expect(calls).toEqual([]);
  });

  it('answers garbage that is not HTTP with a 400 and keeps serving', async () => {
    const reply = await new Promise<string>((resolve, reject) => {
      const s = net.connect(inj.socketPath);
      let out = '';
      s.on('data', (d) => (out += d.toString()));
      s.on('end', () => resolve(out));
      s.on('error', reject);
      s.write('\x00\x01\x02 NOT HTTP AT ALL\r\n\r\n');
    });
    expect(reply).toMatch(/^HTTP\/1\.1 400/);
    expect((await inj.request({ url: '/_ping' })).statusCode).toBe(200);
  });

  it('frees a streaming request when the client disconnects mid-stream', async () => {
    const app = buildApp({ routes: apiRoutes(port) });
    const inj2 = await openInjector(app);
    try {
      await new Promise<void>((resolve, reject) => {
        const s = net.connect(inj2.socketPath);
        s.on('error', reject);
        s.write('GET /events HTTP/1.1\r\nHost: x\r\n\r\n');
        s.once('data', () => {
          expect(app.inflight()).toBe(1);
          s.destroy();
          resolve();
        });
      });
      for (let i = 0; i < 50 && app.inflight() > 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(app.inflight()).toBe(0);
    } finally {
      await inj2.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The table: one bad request each, over a real Engine (FakeRuntime), answered with dockerd's
// status and message. Messages are dockerd's text (checked against a reference dockerd and
// moby's source); a RegExp where the text depends on the host (its CPU count).

type Base = { Image: string; Cmd: string[]; Labels: Record<string, string> };
type Row = [name: string, req: (b: Base) => InjectRequest, status: number, message: string | RegExp];

const nest = (open: string, close: string, n: number, inner = '1') => open.repeat(n) + inner + close.repeat(n);
const rawCreate = (b: Base, extra: string): InjectRequest => ({
  method: 'POST',
  url: '/containers/create',
  body: JSON.stringify(b).slice(0, -1) + ',' + extra + '}',
  headers: { 'Content-Type': 'application/json' },
});
const C = (cfg: object) => (b: Base): InjectRequest => ({ method: 'POST', url: '/containers/create', body: { ...b, ...cfg } });
const H = (hc: object) => C({ HostConfig: hc });
const U = (hc: object) => (): InjectRequest => ({ method: 'POST', url: '/containers/web/update', body: hc });
const DEPTH = "invalid JSON: invalid character '{' exceeded max depth";
const VOLNAME = 'create bad@name: "bad@name" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path';

const table: Row[] = [
  // JSON bodies: nesting is bounded before anything recurses on it
  ['deeply nested unknown field', (b) => rawCreate(b, '"X":' + nest('{"a":', '}', 100_000)), 400, DEPTH],
  ['deeply nested array inside HostConfig', (b) => rawCreate(b, '"HostConfig":{"X":' + nest('[', ']', 50_000, '') + '}'), 400, "invalid JSON: invalid character '[' exceeded max depth"],
  ['nesting just past dockerd\'s own limit', (b) => rawCreate(b, '"X":' + nest('{"a":', '}', 10_001)), 400, DEPTH],
  ['deeply nested update body', () => ({ method: 'POST', url: '/containers/web/update', body: '{"X":' + nest('{"a":', '}', 100_000) + '}', headers: { 'Content-Type': 'application/json' } }), 400, DEPTH],
  ['deeply nested filters', () => ({ url: '/containers/json?filters=' + encodeURIComponent('{"label":' + nest('[', ']', 600, '') + '}') }), 400, "invalid filter: invalid character '[' exceeded max depth"],
  // names
  ['name with a non-ASCII letter', (b) => ({ ...C({})(b), url: '/containers/create?name=caf%C3%A9' }), 400, 'Invalid container name (café), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed'],
  ['name starting with a dash', (b) => ({ ...C({})(b), url: '/containers/create?name=-web' }), 400, 'Invalid container name (-web), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed'],
  // ports
  ['published container port not a number', H({ PortBindings: { 'abc/tcp': [{ HostPort: '80' }] } }), 400, 'invalid port specification: "abc"'],
  ['published container port as a range', H({ PortBindings: { '8000-8001/tcp': [{ HostPort: '80' }] } }), 400, 'invalid port specification: "8000-8001"'],
  ['published container port above 65535', H({ PortBindings: { '70000/tcp': [{ HostPort: '80' }] } }), 400, 'invalid port specification: "70000"'],
  ['HostPort not a number', H({ PortBindings: { '80/tcp': [{ HostPort: 'http' }] } }), 400, 'invalid port specification: "http"'],
  ['HostPort above 65535', H({ PortBindings: { '80/tcp': [{ HostPort: '70000' }] } }), 400, 'invalid port specification: "70000"'],
  ['HostPort range backwards', H({ PortBindings: { '80/tcp': [{ HostPort: '90-80' }] } }), 400, 'invalid port specification: "90-80"'],
  ['published port with an unknown protocol', H({ PortBindings: { '80/bogus': [{ HostPort: '80' }] } }), 400, 'invalid proto: bogus'],
  ['exposed port not a number', C({ ExposedPorts: { 'abc/tcp': {} } }), 400, 'invalid port specification: "abc"'],
  ['exposed port with an unknown protocol', C({ ExposedPorts: { '80/bogus': {} } }), 400, 'invalid proto: bogus'],
  ['exposed port range backwards', C({ ExposedPorts: { '90-80/tcp': {} } }), 400, 'invalid port specification: "90-80"'],
  // capabilities and security options
  ['unknown capability in CapAdd', H({ CapAdd: ['BOGUS'] }), 400, 'invalid CapAdd: unknown capability: "CAP_BOGUS"'],
  ['unknown capability in a privileged container', H({ Privileged: true, CapAdd: ['BOGUS'] }), 400, 'invalid CapAdd: unknown capability: "CAP_BOGUS"'],
  ['unknown capability in CapDrop', H({ CapDrop: ['CAP_NOPE'] }), 400, 'invalid CapDrop: unknown capability: "CAP_NOPE"'],
  ['security option without a value', H({ SecurityOpt: ['foo'] }), 400, 'invalid --security-opt 1: "foo"'],
  ['unknown security option', H({ SecurityOpt: ['foo=bar'] }), 400, 'invalid --security-opt 2: "foo=bar"'],
  ['no-new-privileges not a boolean', H({ SecurityOpt: ['no-new-privileges=maybe'] }), 400, 'invalid --security-opt 2: "no-new-privileges=maybe"'],
  // logging
  ['unknown log driver', H({ LogConfig: { Type: 'syslogx', Config: {} } }), 400, 'error looking up logging plugin syslogx: plugin "syslogx" not found'],
  ['unknown json-file option', H({ LogConfig: { Type: 'json-file', Config: { bogus: '1' } } }), 400, "unknown log opt 'bogus' for json-file log driver"],
  ['json-file max-size not a size', H({ LogConfig: { Type: 'json-file', Config: { 'max-size': '10q' } } }), 400, "invalid size: '10q'"],
  ['json-file max-file not a number', H({ LogConfig: { Type: 'json-file', Config: { 'max-size': '1m', 'max-file': 'x' } } }), 400, 'invalid value for max-file: x'],
  ['json-file max-file zero', H({ LogConfig: { Type: 'json-file', Config: { 'max-size': '1m', 'max-file': '0' } } }), 400, 'invalid value for max-file: 0'],
  // volumes and binds: a relative source is a volume name
  ['bind of an invalid volume name', H({ Binds: ['bad@name:/data'] }), 400, VOLNAME],
  ['bind of a one-character volume name', H({ Binds: ['a:/data'] }), 400, 'create a: volume name is too short, names should be at least two alphanumeric characters'],
  ['volume mount with an invalid name', H({ Mounts: [{ Type: 'volume', Source: 'bad@name', Target: '/x' }] }), 400, VOLNAME],
  ['bind to a relative destination', H({ Binds: ['/tmp:relative'] }), 400, `invalid volume specification: '/tmp:relative': invalid mount config for type "bind": invalid mount path: 'relative' mount path must be absolute`],
  ['bind with an unknown mode', H({ Binds: ['/tmp:/dst:bogus'] }), 400, 'invalid mode: bogus'],
  ['bind with an empty source', H({ Binds: [':/data'] }), 400, "invalid volume specification: ':/data'"],
  ['bind onto /', H({ Binds: ['/tmp:/'] }), 400, `invalid volume specification: '/tmp:/': invalid mount config for type "bind": invalid specification: destination can't be '/'`],
  ['mount of an unknown type', H({ Mounts: [{ Type: 'bogus', Target: '/x' }] }), 400, 'invalid mount config for type "bogus": mount type unknown'],
  ['bind mount without Target', H({ Mounts: [{ Type: 'bind', Source: '/tmp' }] }), 400, 'invalid mount config for type "bind": field Target must not be empty'],
  ['bind mount without Source', H({ Mounts: [{ Type: 'bind', Target: '/x' }] }), 400, 'invalid mount config for type "bind": field Source must not be empty'],
  ['bind mount of a missing source', H({ Mounts: [{ Type: 'bind', Source: '/nonexistent-berth-src', Target: '/x' }] }), 400, 'invalid mount config for type "bind": bind source path does not exist: /nonexistent-berth-src'],
  ['bind mount of a relative source', H({ Mounts: [{ Type: 'bind', Source: 'relative', Target: '/x' }] }), 400, `invalid mount config for type "bind": invalid mount path: 'relative' mount path must be absolute`],
  ['tmpfs mount with a Source', H({ Mounts: [{ Type: 'tmpfs', Source: 'x', Target: '/x' }] }), 400, 'invalid mount config for type "tmpfs": field Source must not be specified'],
  ['two mounts on one path', H({ Mounts: [{ Type: 'tmpfs', Target: '/x' }, { Type: 'tmpfs', Target: '/x' }] }), 400, 'Duplicate mount point: /x'],
  ['tmpfs on a relative path', H({ Tmpfs: { relative: '' } }), 400, "invalid mount path: 'relative' mount path must be absolute"],
  ['tmpfs with an unknown option', H({ Tmpfs: { '/t': 'frobnicate' } }), 400, 'Invalid tmpfs option ["frobnicate"]'],
  // restart policy
  ['always with a retry count', H({ RestartPolicy: { Name: 'always', MaximumRetryCount: 3 } }), 400, "invalid restart policy: maximum retry count can only be used with 'on-failure'"],
  ['always with a negative retry count', H({ RestartPolicy: { Name: 'always', MaximumRetryCount: -2 } }), 400, "invalid restart policy: maximum retry count can only be used with 'on-failure' and cannot be negative"],
  ['on-failure with a negative retry count', H({ RestartPolicy: { Name: 'on-failure', MaximumRetryCount: -1 } }), 400, 'invalid restart policy: maximum retry count cannot be negative'],
  ['unknown restart policy name', H({ RestartPolicy: { Name: 'sometimes' } }), 400, "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"],
  ['AutoRemove with a restart policy', H({ AutoRemove: true, RestartPolicy: { Name: 'always' } }), 400, "can't create 'AutoRemove' container with restart policy"],
  // resources
  ['Memory below 6 MB', H({ Memory: 1024 }), 400, 'Minimum memory limit allowed is 6MB'],
  ['negative Memory', H({ Memory: -5 }), 400, 'Minimum memory limit allowed is 6MB'],
  ['MemorySwap below Memory', H({ Memory: 64 << 20, MemorySwap: 32 << 20 }), 400, 'Minimum memoryswap limit should be larger than memory limit, see usage'],
  ['MemorySwap without Memory', H({ MemorySwap: 64 << 20 }), 400, 'You should always set the Memory limit when using Memoryswap limit, see usage'],
  ['MemoryReservation above Memory', H({ Memory: 64 << 20, MemoryReservation: 128 << 20 }), 400, 'Minimum memory limit can not be less than memory reservation limit, see usage'],
  ['NanoCpus with CpuQuota', H({ NanoCpus: 1e9, CpuQuota: 50000 }), 400, 'Conflicting options: Nano CPUs and CPU Quota cannot both be set'],
  ['more CPUs than the host has', H({ NanoCpus: 1e9 * 100_000 }), 400, /^Range of CPUs is from 0\.01 to \d+\.00, as there are only \d+ CPUs available$/],
  ['CpuPeriod below 1 ms', H({ CpuPeriod: 100 }), 400, 'CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)'],
  ['CpuQuota below 1 ms', H({ CpuQuota: 100 }), 400, 'CPU cfs quota can not be less than 1ms (i.e. 1000)'],
  ['negative CpuShares', H({ CpuShares: -1 }), 400, 'invalid CPU shares: -1'],
  ['OomScoreAdj out of range', H({ OomScoreAdj: 2000 }), 400, 'Invalid value 2000, range for oom score adj is [-1000, 1000]'],
  ['MemorySwappiness out of range', H({ MemorySwappiness: 200 }), 400, 'Invalid value: 200, valid memory swappiness range is 0-100'],
  ['BlkioWeight out of range', H({ BlkioWeight: 5 }), 400, 'Range of blkio weight is from 10 to 1000'],
  ['negative ShmSize', H({ ShmSize: -1 }), 400, 'SHM size can not be less than 0'],
  ['malformed CpusetCpus', H({ CpusetCpus: 'abc' }), 400, /^Invalid value abc for cpuset cpus/],
  ['unknown ulimit', H({ Ulimits: [{ Name: 'bogus', Soft: 1, Hard: 1 }] }), 400, 'invalid ulimit type: bogus'],
  ['ulimit soft above hard', H({ Ulimits: [{ Name: 'nofile', Soft: 2048, Hard: 1024 }] }), 400, 'ulimit soft limit must be less than or equal to hard limit: 2048 > 1024'],
  ['sysctl outside any namespace', H({ Sysctls: { 'kernel.bogus': '1' } }), 400, 'sysctl "kernel.bogus" is not in a separate kernel namespace'],
  ['net sysctl with the host network', H({ NetworkMode: 'host', Sysctls: { 'net.ipv4.ip_forward': '1' } }), 400, 'sysctl "net.ipv4.ip_forward" not allowed in host network namespace'],
  ['device with bad permissions', H({ Devices: [{ PathOnHost: '/dev/null', PathInContainer: '/dev/x', CgroupPermissions: 'xyz' }] }), 400, 'invalid device mode: xyz'],
  ['malformed device cgroup rule', H({ DeviceCgroupRules: ['x y z'] }), 400, "invalid device cgroup rule format: 'x y z'"],
  // Config
  ['Env entry without a name', C({ Env: ['=x'] }), 400, 'invalid environment variable: =x'],
  ['empty Env entry', C({ Env: [''] }), 400, 'invalid environment variable: '],
  ['healthcheck interval below 1 ms', C({ Healthcheck: { Test: ['CMD', 'true'], Interval: 10 } }), 400, 'Interval in Healthcheck cannot be less than 1ms'],
  ['healthcheck timeout below 1 ms', C({ Healthcheck: { Test: ['CMD', 'true'], Timeout: 10 } }), 400, 'Timeout in Healthcheck cannot be less than 1ms'],
  ['negative healthcheck retries', C({ Healthcheck: { Test: ['CMD', 'true'], Retries: -1 } }), 400, 'Retries in Healthcheck cannot be negative'],
  ['healthcheck start period below 1 ms', C({ Healthcheck: { Test: ['CMD', 'true'], StartPeriod: 10 } }), 400, 'StartPeriod in Healthcheck cannot be less than 1ms'],
  ['healthcheck interval not a number', C({ Healthcheck: { Test: ['CMD', 'true'], Interval: '10s' } }), 400, 'json: cannot unmarshal string into Go struct field Config.Healthcheck.Interval of type int64'],
  ['unknown stop signal', C({ StopSignal: 'SIGNOPE' }), 400, 'Invalid signal: SIGNOPE'],
  ['relative working directory', C({ WorkingDir: 'relative/dir' }), 400, "the working directory 'relative/dir' is invalid, it needs to be an absolute path"],
  ['hostname longer than the kernel allows', C({ Hostname: 'h'.repeat(300) }), 400, 'invalid hostname: 64 characters at most, got 300'],
  // namespace modes and the rest of HostConfig
  ['container network mode without a container', H({ NetworkMode: 'container:' }), 400, 'Invalid network mode: invalid container format container:<name|id>'],
  ['unknown IPC mode', H({ IpcMode: 'bogus' }), 400, 'invalid IPC mode: bogus'],
  ['unknown PID mode', H({ PidMode: 'bogus' }), 400, 'invalid PID mode: bogus'],
  ['unknown UTS mode', H({ UTSMode: 'bogus' }), 400, 'invalid UTS mode: bogus'],
  ['unknown cgroup namespace mode', H({ CgroupnsMode: 'bogus' }), 400, 'invalid cgroup namespace mode: bogus'],
  ['extra host without an address', H({ ExtraHosts: ['nohost'] }), 400, 'bad format for add-host: "nohost"'],
  ['extra host with a bad address', H({ ExtraHosts: ['h:notip'] }), 400, 'invalid IP address in add-host: "notip"'],
  ['annotation with an empty key', H({ Annotations: { '': 'x' } }), 400, 'invalid Annotations: the empty string is not permitted as an annotation key'],
  ['hyperv isolation', H({ Isolation: 'hyperv' }), 400, `Invalid isolation: "hyperv" - linux only supports 'default'`],
  // update: the same module as create
  ['update: always with a retry count', U({ RestartPolicy: { Name: 'always', MaximumRetryCount: 3 } }), 400, "invalid restart policy: maximum retry count can only be used with 'on-failure'"],
  ['update: negative retry count', U({ RestartPolicy: { Name: 'on-failure', MaximumRetryCount: -1 } }), 400, 'invalid restart policy: maximum retry count cannot be negative'],
  ['update: unknown restart policy', U({ RestartPolicy: { Name: 'sometimes' } }), 400, "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"],
  ['update: Memory below 6 MB', U({ Memory: 1024 }), 400, 'Minimum memory limit allowed is 6MB'],
  ['update: CpuPeriod out of range', U({ CpuPeriod: 100 }), 400, 'CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)'],
  ['update: RestartPolicy of the wrong type', U({ RestartPolicy: 'always' }), 400, 'json: cannot unmarshal string into Go struct field RestartPolicy of type object'],
];

describe('bad input over the engine: dockerd\'s status and message', () => {
  let t: TestEngine;
  let inj: Injector;
  let base: Base;
  let webId: string;
  beforeAll(async () => {
    t = await createTestEngine({ logDrainMs: 50 });
    inj = await openInjector(buildApp({ routes: apiRoutes(enginePort(t.engine, { facts: facts() })) }));
    base = { Image: 'plain', Cmd: ['/bin/app'], Labels: { 'io.berth.rootfs': t.rootfs } };
    const r = await inj.request({ method: 'POST', url: '/containers/create?name=web', body: base });
    expect(r.statusCode).toBe(201);
    webId = r.json().Id;
  });
  afterAll(async () => {
    await inj?.close();
    await t?.dispose();
  });

  afterEach(async () => {
    // a row that wrongly succeeded must not fail the rows after it
    for (const c of t.engine.containers.list()) if (c.ID !== webId) await t.engine.containers.remove(c.ID, { force: true });
  });

  it.each(table)('%s', async (_name, req, status, message) => {
    const r = await inj.request(req(base));
    expect({ status: r.statusCode, message: r.json().message }).toEqual({ status, message: typeof message === 'string' ? message : expect.stringMatching(message) });
    // nothing was made or changed, and the daemon still answers
    expect(t.engine.containers.list().map((c) => c.ID)).toEqual([webId]);
    expect(t.engine.containers.get(webId).HostConfig.RestartPolicy).toEqual({ Name: 'no', MaximumRetryCount: 0 });
    expect((await inj.request({ url: '/_ping' })).statusCode).toBe(200);
  });

  it('accepts nesting up to the limit, and what dockerd accepts: max-file without max-size, a long name', async () => {
    const deep = await inj.request(rawCreate(base, '"X":' + nest('{"a":', '}', MAX_JSON_DEPTH - 1)));
    expect(deep.statusCode).toBe(201);
    const once = await inj.request({ method: 'POST', url: '/containers/create?name=' + 'n'.repeat(300), body: { ...base, HostConfig: { LogConfig: { Type: 'json-file', Config: { 'max-file': '3' } } } } });
    expect(once.statusCode).toBe(201);
    const over = await inj.request(rawCreate(base, '"X":' + nest('{"a":', '}', MAX_JSON_DEPTH)));
    expect(over.statusCode).toBe(400);
  });

  it('update checks the changes alone, as dockerd: a MemorySwap without a Memory is held against the stored limit', async () => {
    const id = (await inj.request(H({ Memory: 64 << 20, MemorySwap: 128 << 20 })(base))).json().Id;
    const swapOnly = await inj.request({ method: 'POST', url: `/containers/${id}/update`, body: { MemorySwap: 256 << 20 } });
    expect(swapOnly.statusCode).toBe(200);
    const tooSmall = await inj.request({ method: 'POST', url: `/containers/${id}/update`, body: { MemorySwap: 32 << 20 } });
    expect(tooSmall.statusCode).toBe(400);
    expect(t.engine.containers.get(id).HostConfig).toMatchObject({ Memory: 64 << 20, MemorySwap: 256 << 20 });
  });

  it('a valid volume name gets 501 in a build without the volumes plugin', async () => {
    const r = await inj.request(H({ Binds: ['goodname:/data'] })(base));
    expect(r.statusCode).toBe(501);
    expect(r.json().message).toBe('volumes are not supported by this build (volume "goodname" at /data): no volume plugin is loaded; use a bind mount');
  });
});
