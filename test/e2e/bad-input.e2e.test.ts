/**
 * Bad input through the real docker CLI against a real berthd: each refused with the exit
 * code and the "Error response from daemon: …" line dockerd gives for the same command
 * (checked against Debian's dockerd), nothing created, and berthd still serving. The full
 * table of bad requests is packages/daemon/test/bad-input.test.ts; this is a sample of it
 * as users type it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_IMAGE, berthdSkipReason, removeTestImageTarball, startBerthd, type Berthd } from './helpers/berthd.js';

const skip = berthdSkipReason();

const VOLNAME =
  'create bad@name: "bad@name" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path';

/** `docker create <flags> image true` → dockerd's message (all of these reach the daemon: the CLI passes them as they are). */
const createSample: Array<[flags: string[], message: string]> = [
  [['--cap-add', 'BOGUS'], 'invalid CapAdd: unknown capability: "CAP_BOGUS"'],
  [['--security-opt', 'foo=bar'], 'invalid --security-opt 2: "foo=bar"'],
  [['--log-driver', 'syslogx'], 'error looking up logging plugin syslogx: plugin "syslogx" not found'],
  [['--log-opt', 'bogus=1'], "unknown log opt 'bogus' for json-file log driver"],
  [['-v', 'bad@name:/data'], VOLNAME],
  [['--memory', '1k'], 'Minimum memory limit allowed is 6MB'],
  [['--workdir', 'rel'], "the working directory 'rel' is invalid, it needs to be an absolute path"],
  [['--mount', 'type=bind,src=/nonexistent-berth-e2e,dst=/x'], 'invalid mount config for type "bind": bind source path does not exist: /nonexistent-berth-e2e'],
  [['--name', 'café'], 'Invalid container name (café), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed'],
  [['--stop-signal', 'SIGNOPE'], 'Invalid signal: SIGNOPE'],
  [['--health-cmd', 'true', '--health-interval', '1ns'], 'Interval in Healthcheck cannot be less than 1ms'],
  [['--cpu-period', '100'], 'CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)'],
  [['--oom-score-adj', '2000'], 'Invalid value 2000, range for oom score adj is [-1000, 1000]'],
  [['--restart', 'always:3'], "invalid restart policy: maximum retry count can only be used with 'on-failure'"],
];

describe.skipIf(skip)(`bad input through the docker CLI${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let d: Berthd;
  beforeAll(async () => {
    d = await startBerthd();
    await d.loadTestImage();
    const r = await d.docker(['create', '--name', 'upd', TEST_IMAGE, 'true']);
    expect(r.code).toBe(0);
  }, 120_000);
  afterAll(async () => {
    await d?.cleanup();
    removeTestImageTarball();
  });

  const listed = async () => (await d.docker(['ps', '-a', '--format', '{{.Names}}'])).stdout.trim().split('\n').filter(Boolean);

  it.each(createSample)('docker create %j', async (flags, message) => {
    const r = await d.docker(['create', ...flags, TEST_IMAGE, 'true']);
    expect({ code: r.code, stderr: r.stderr.trim() }).toEqual({ code: 1, stderr: `Error response from daemon: ${message}` });
    expect(await listed()).toEqual(['upd']);
  });

  it('docker update refuses what create refuses (always with a retry count, memory below 6 MB) and changes nothing', async () => {
    for (const [flags, message] of [
      [['--restart', 'always:3'], "invalid restart policy: maximum retry count can only be used with 'on-failure'"],
      [['--memory', '1k'], 'Minimum memory limit allowed is 6MB'],
    ] as const) {
      const r = await d.docker(['update', ...flags, 'upd']);
      expect({ code: r.code, stderr: r.stderr.trim() }).toEqual({ code: 1, stderr: `Error response from daemon: ${message}` });
    }
    const hc = JSON.parse((await d.docker(['inspect', '--format', '{{json .HostConfig}}', 'upd'])).stdout);
    expect({ RestartPolicy: hc.RestartPolicy, Memory: hc.Memory }).toEqual({ RestartPolicy: { Name: 'no', MaximumRetryCount: 0 }, Memory: 0 });
  });

  it('accepts what dockerd accepts: max-file without max-size', async () => {
    const r = await d.docker(['create', '--name', 'maxfile', '--log-opt', 'max-file=3', TEST_IMAGE, 'true']);
    expect(r.code).toBe(0);
    expect((await d.docker(['rm', 'maxfile'])).code).toBe(0);
  });

  it('a deeply nested body is a 400 and berthd keeps serving', async () => {
    const body = '{"Image":"' + TEST_IMAGE + '","X":' + '{"a":'.repeat(100_000) + '1' + '}'.repeat(100_000) + '}';
    const r = await d.api('POST', '/containers/create', body);
    expect({ status: r.status, message: JSON.parse(r.body).message }).toEqual({ status: 400, message: "invalid JSON: invalid character '{' exceeded max depth" });
    expect((await d.api('GET', '/_ping')).status).toBe(200);
    expect(await listed()).toEqual(['upd']);
  });
});
