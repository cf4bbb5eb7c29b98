/**
 * The real docker CLI against a real berthd (runc + conmon + the image store), command by
 * command, each answer compared with what dockerd answered for the same command
 * (helpers/fixtures/dockerd-cli.json, recorded with BERTH_E2E_RECORD=1 against Debian's
 * dockerd through the very same steps).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DOCKER_BIN, TEST_IMAGE, berthdSkipReason, startBerthd, removeTestImageTarball, type Berthd, type CliResult } from './helpers/berthd.js';
import { dockerdAvailable, startDockerd } from './helpers/dockerd.js';

const RECORD = process.env.BERTH_E2E_RECORD === '1';
const FIXTURE = path.join(path.dirname(new URL(import.meta.url).pathname), 'helpers/fixtures/dockerd-cli.json');
const skip = RECORD ? (dockerdAvailable() ? null : 'no dockerd to record from') : berthdSkipReason();

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** Answers that legitimately differ between runs or engines: IDs, durations, times, versions. */
function normalize(r: CliResult): Outcome {
  const n = (s: string) =>
    s
      .replace(/\b[0-9a-f]{64}\b/g, '<id>')
      .replace(/\b[0-9a-f]{12}\b/g, '<short-id>')
      .replace(/(Up|Exited \(\d+\)) (Less than a second|About a minute|About an hour|\d+ \w+)/g, '$1 <duration>')
      .replace(/\d{4}-\d{2}-\d{2}T[\d:.]+(Z|[+-]\d\d:\d\d)/g, '<time>');
  return { code: r.code, stdout: n(r.stdout), stderr: n(r.stderr) };
}

const recorded: Record<string, Outcome> = {};
const fixture: Record<string, Outcome> = RECORD || !fs.existsSync(FIXTURE) ? {} : JSON.parse(fs.readFileSync(FIXTURE, 'utf8'));

/** Record (against dockerd) or compare (against berthd) one step's answer. */
function same(step: string, r: CliResult, project: (o: Outcome) => unknown = (o) => o): void {
  const o = normalize(r);
  if (RECORD) {
    recorded[step] = o;
    return;
  }
  expect(fixture[step], `no dockerd fixture for ${step}`).toBeDefined();
  expect(project(o), `${step}: berthd answered ${JSON.stringify(r)}`).toEqual(project(fixture[step]));
}

describe.skipIf(skip)(`docker CLI against berthd, compared with dockerd${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let d: Berthd;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-cli-'));
  beforeAll(async () => {
    d = RECORD ? await startDockerd() : await startBerthd();
    await d.loadTestImage();
  }, 120_000);
  afterAll(async () => {
    if (RECORD) fs.writeFileSync(FIXTURE, JSON.stringify(recorded, null, 2) + '\n');
    await d?.docker(['rm', '-f', 'logger', 'shell', 'shell2', 'ps-a', 'ps-b', 'killme', 'waiter', 'gone', 'again']).catch(() => {});
    await d?.cleanup();
    removeTestImageTarball();
    fs.rmSync(tmp, { recursive: true, force: true });
  }, 120_000);

  it('run --rm in the foreground delivers all of a large output, also to a reader that starts late', async () => {
    // The attach ends right after the exit (the log is complete by then): nothing may be cut.
    for (let i = 0; i < 3; i++) {
      const r = await d.docker(['run', '--rm', '--network', 'none', TEST_IMAGE, 'sh', '-c', 'seq 1 20000; seq 1 5000 >&2']);
      expect(r.code).toBe(0);
      expect(r.stdout.split('\n').length - 1).toBe(20000);
      expect(r.stdout.endsWith('\n20000\n')).toBe(true);
      expect(r.stderr.split('\n').length - 1).toBe(5000);
    }
    const late = await new Promise<string>((resolve, reject) =>
      execFile(
        'sh',
        ['-c', `"${DOCKER_BIN}" run --rm --network none ${TEST_IMAGE} seq 1 100000 | (sleep 2; wc -l)`],
        { env: { ...process.env, DOCKER_HOST: d.host, DOCKER_CLI_HINTS: 'false' }, maxBuffer: 1 << 20 },
        (err, stdout) => (err ? reject(err) : resolve(stdout.trim())),
      ),
    );
    expect(late).toBe('100000');
  }, 120_000);

  it('run of a missing command: exit 127 and the runtime\'s own words, without its log-format wrapping', async () => {
    const r = await d.docker(['run', '--rm', '--network', 'none', TEST_IMAGE, 'nosuchcmd']);
    expect(r.code).toBe(127);
    expect(r.stderr).toContain('failed to create task for container');
    expect(r.stderr).toContain('exec: "nosuchcmd": executable file not found in $PATH');
    // (The CLI formats its own wait error with logrus; the daemon's answer is the line below.)
    const answer = r.stderr.split('\n').find((l) => l.includes('Error response from daemon'));
    expect(answer).toBeDefined();
    expect(answer).not.toMatch(/level=error/);
  });

  it('start -a of an exited container prints its next run and exits with its code (dockerd attaches to a stopped container)', async () => {
    const first = await d.docker(['run', '--name', 'again', '--network', 'none', TEST_IMAGE, 'sh', '-c', 'echo ran; exit 4']);
    expect(first.code).toBe(4);
    expect(first.stdout).toBe('ran\n');
    const r = await d.docker(['start', '-a', 'again']);
    expect(r.code).toBe(4);
    expect(r.stdout).toBe('ran\n');
  });

  it('run --rm in the foreground keeps stdout and stderr apart and exits with the code', async () => {
    same('run-rm', await d.docker(['run', '--rm', '--network', 'none', TEST_IMAGE, 'sh', '-c', 'echo out; echo err >&2; exit 3']));
    same('run-rm-exit0', await d.docker(['run', '--rm', '--network', 'none', TEST_IMAGE, 'echo', 'hello from berth']));
    // Unknown image: both refuse (the CLI then tries a pull from a registry this machine cannot reach).
    const miss = await d.docker(['create', '--network', 'none', '--pull', 'never', 'no-such-image:1']);
    same('create-unknown-image', miss, (o) => ({ code: o.code, stderr: o.stderr.includes('No such image: no-such-image:1') }));
  });

  it('run -d then logs -f follows until the container exits', async () => {
    same('run-d', await d.docker(['run', '-d', '--name', 'logger', '--network', 'none', TEST_IMAGE, 'sh', '-c', 'for i in 1 2 3; do echo line$i; sleep 0.3; done']));
    same('logs-f', await d.docker(['logs', '-f', 'logger'], { timeoutMs: 20_000 }));
    same('logs-tail', await d.docker(['logs', '--tail', '1', 'logger']));
  });

  it('exec -it through a pty', async () => {
    same('run-shell', await d.docker(['run', '-d', '--name', 'shell', '--network', 'none', TEST_IMAGE, 'sleep', '300']));
    const r = await d.dockerInPty(['exec', '-it', 'shell', 'sh', '-c', 'read x; echo got-$x; exit 4'], 'hello\r');
    same('exec-it', r, (o) => ({ code: o.code, echoed: o.stdout.includes('got-hello') }));
    same('exec', await d.docker(['exec', 'shell', 'sh', '-c', 'echo in-exec; echo exec-err >&2; exit 5']));
  });

  it('ps with filters', async () => {
    await d.docker(['run', '-d', '--name', 'ps-a', '--label', 'team=a', '--network', 'none', TEST_IMAGE, 'sleep', '300']);
    await d.docker(['run', '--name', 'ps-b', '--label', 'team=b', '--network', 'none', TEST_IMAGE, 'true']);
    same('ps-label', await d.docker(['ps', '--filter', 'label=team=a', '--format', '{{.Names}} {{.State}} {{.Image}} {{.Command}}']));
    same('ps-exited', await d.docker(['ps', '-a', '--filter', 'label=team=b', '--filter', 'status=exited', '--format', '{{.Names}} {{.Status}}']));
    same('ps-exited-code', await d.docker(['ps', '-a', '--filter', 'exited=0', '--filter', 'name=ps-', '--format', '{{.Names}}']));
    same('ps-name-quiet-none', await d.docker(['ps', '--filter', 'name=ps-b', '-q']));
    same('ps-bad-filter', await d.docker(['ps', '--filter', 'status=sleeping']), (o) => o.code);
  });

  it('inspect', async () => {
    same('inspect', await d.docker(['inspect', '--format', '{{.Name}} {{.State.Status}} {{.Config.Image}} {{.HostConfig.NetworkMode}} {{.State.Running}} {{.Path}} {{.Args}}', 'ps-a']));
    same('inspect-missing', await d.docker(['inspect', 'nope-nothing']), (o) => ({ code: o.code, stdout: o.stdout }));
  });

  it('stop, kill, rm -f, wait', async () => {
    same('stop', await d.docker(['stop', '-t', '1', 'ps-a']));
    same('stop-exit', await d.docker(['inspect', '-f', '{{.State.ExitCode}} {{.State.Status}}', 'ps-a']));
    same('stop-again', await d.docker(['stop', 'ps-a']));
    same('run-killme', await d.docker(['run', '-d', '--name', 'killme', '--network', 'none', TEST_IMAGE, 'sleep', '300']));
    same('kill', await d.docker(['kill', 'killme']));
    same('kill-exit', await d.docker(['inspect', '-f', '{{.State.ExitCode}}', 'killme']));
    same('kill-stopped', await d.docker(['kill', 'killme']), (o) => o.code);
    await d.docker(['run', '-d', '--name', 'gone', '--network', 'none', TEST_IMAGE, 'sleep', '300']);
    same('rm-f', await d.docker(['rm', '-f', 'gone']));
    same('rm-f-check', await d.docker(['ps', '-a', '--filter', 'name=gone', '-q']));
    same('run-waiter', await d.docker(['run', '-d', '--name', 'waiter', '--network', 'none', TEST_IMAGE, 'sh', '-c', 'sleep 0.3; exit 7']));
    same('run-bad-name', await d.docker(['run', '-d', '--name', 'w', '--network', 'none', TEST_IMAGE, 'true']));
    same('wait', await d.docker(['wait', 'waiter']));
  });

  it('events between since and until', async () => {
    const since = Math.floor(Date.now() / 1000) - 1;
    await d.docker(['run', '--name', 'ev', '--network', 'none', TEST_IMAGE, 'true']);
    await d.docker(['rm', 'ev']);
    const until = Math.floor(Date.now() / 1000) + 1;
    await new Promise((r) => setTimeout(r, 1100));
    same('events', await d.docker(['events', '--since', String(since), '--until', String(until), '--filter', 'container=ev', '--format', '{{.Type}} {{.Action}} {{.Actor.Attributes.name}}']));
  });

  it('cp both ways', async () => {
    const src = path.join(tmp, 'in.txt');
    fs.writeFileSync(src, 'copied in\n');
    same('cp-in', await d.docker(['cp', src, 'shell:/tmp/in.txt']), (o) => o.code);
    same('cp-in-check', await d.docker(['exec', 'shell', 'cat', '/tmp/in.txt']));
    const out = path.join(tmp, 'passwd');
    same('cp-out', await d.docker(['cp', 'shell:/etc/passwd', out]), (o) => o.code);
    expect(fs.readFileSync(out, 'utf8').split('\n')[0]).toBe('root:x:0:0:root:/root:/bin/sh');
    same('cp-missing', await d.docker(['cp', 'shell:/does/not/exist', out]));
  });

  it('stats --no-stream and top', async () => {
    same('stats', await d.docker(['stats', '--no-stream', '--format', '{{.Name}} {{.PIDs}}', 'shell']));
    const top = await d.docker(['top', 'shell']);
    same('top', top, (o) => ({ code: o.code, titles: o.stdout.split('\n')[0].trim().split(/\s+/), sleep: o.stdout.includes('sleep 300') }));
  });

  it('rename, pause/unpause, restart', async () => {
    same('rename', await d.docker(['rename', 'shell', 'shell2']));
    same('rename-ps', await d.docker(['ps', '--filter', 'name=shell2', '--format', '{{.Names}}']));
    same('pause', await d.docker(['pause', 'shell2']));
    same('pause-ps', await d.docker(['ps', '--filter', 'status=paused', '--format', '{{.Names}} {{.State}}']));
    same('pause-exec', await d.docker(['exec', 'shell2', 'true']), (o) => o.code);
    same('unpause', await d.docker(['unpause', 'shell2']));
    same('restart', await d.docker(['restart', '-t', '1', 'shell2']));
    same('restart-state', await d.docker(['inspect', '-f', '{{.State.Status}} {{.State.Running}} {{.RestartCount}}', 'shell2']));
  });
});
