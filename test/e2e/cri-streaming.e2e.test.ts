/**
 * CRI streaming against berthd (plugin `cri`, real runc + conmon), critest-named: the
 * streaming server's exec, attach and port forward, over WebSocket (v4.channel.k8s.io, as
 * kubectl speaks to kubelet) and over SPDY/3.1 (as the API server → kubelet hop does). Pods go
 * on this file's own CNI bridge and subnet, put back even on failure (helpers/cri.ts). Waits
 * poll with a deadline; nothing asserts how long anything took.
 */
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { dialSpdy, openSpdyStream, readAll } from '@berth/plugin-cri';
import { CONTAINER, criSkip as skip, useCriBerthd, waitFor } from './helpers/cri.js';
import { testNetworks } from './helpers/network-host.js';

describe.skipIf(skip)(`CRI streaming against berthd${skip ? ` (skipped: ${skip})` : ''}`, () => {
  const { rt, runPod, startContainer } = useCriBerthd(testNetworks('bq', ['s']).s);

  /** A WebSocket client of the streaming server as kubectl is: send stdin lines (channel 0) once open, collect channels until the server closes. */
  function stream(url: string, input: string, until?: (channels: Record<number, string>) => boolean): Promise<Record<number, string>> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url.replace(/^http/, 'ws'), ['v4.channel.k8s.io']);
      const channels: Record<number, string> = {};
      ws.on('open', () => ws.send(Buffer.concat([Buffer.from([0]), Buffer.from(input)])));
      ws.on('message', (data: Buffer) => {
        channels[data[0]!] = (channels[data[0]!] ?? '') + data.subarray(1).toString();
        if (until?.(channels)) ws.close();
      });
      ws.on('close', () => resolve(channels));
      ws.on('error', reject);
    });
  }

  it('runtime should support streaming exec and attach (WebSocket v4.channel.k8s.io)', async () => {
    const pod = await runPod('stream-pod');
    const id = await startContainer(pod, 'echoer', ['sh', '-c', 'while read l; do echo "attached $l"; done'], { stdin: true });
    const { url } = await rt('Exec', { container_id: id, cmd: ['sh', '-c', 'read x; echo "got $x"; echo err >&2; exit 3'], stdin: true, stdout: true, stderr: true });
    const ex = await stream(url, 'hello\n');
    expect(ex[1]).toBe('got hello\n');
    expect(ex[2]).toBe('err\n');
    expect(JSON.parse(ex[3]!)).toMatchObject({ status: 'Failure', reason: 'NonZeroExitCode', details: { causes: [{ reason: 'ExitCode', message: '3' }] } });
    // Attach: stdin reaches the container's process, its output comes back; the client leaves, the container runs on.
    const at = await stream((await rt('Attach', { container_id: id, stdin: true, stdout: true, stderr: true })).url, 'one\n', (c) => (c[1] ?? '').includes('attached one'));
    expect(at[1]).toContain('attached one\n');
    expect((await rt('ContainerStatus', { container_id: id })).status.state).toBe(CONTAINER.RUNNING);
    await rt('RemovePodSandbox', { pod_sandbox_id: pod.id });
  });

  it('runtime should support port forward (WebSocket v4, to a port on the pod\'s 127.0.0.1)', async () => {
    const pod = await runPod('pf-pod');
    // Bound to the pod's loopback only: reachable from inside its network namespace, nowhere else.
    await startContainer(pod, 'srv', ['sh', '-c', 'mkdir -p /www && echo port-forwarded > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www']);
    const forward = async (port: number) => stream((await rt('PortForward', { pod_sandbox_id: pod.id, port: [port] })).url, 'GET /index.html HTTP/1.0\r\n\r\n');
    const got = await waitFor('forwarded port 8080', () => forward(8080), (c) => (c[0] ?? '').includes('port-forwarded'));
    expect(got[0]!.slice(2)).toMatch(/^HTTP\/1\.[01] 200 OK\r\n[^]*\r\n\r\nport-forwarded\n$/); // after the port's two bytes; httpd closed, so did the stream
    // Nothing listens on 8081 in the pod: the error channel says so, as kubelet writes it.
    const refused = await forward(8081);
    expect(refused[1]!.slice(2)).toMatch(new RegExp(`^error forwarding port 8081 to pod ${pod.id}: failed to connect to localhost:8081`));
    await rt('RemovePodSandbox', { pod_sandbox_id: pod.id });
  });

  // The same over SPDY/3.1, as the API server → kubelet hop speaks it: one SPDY stream per channel (dialSpdy behaves as Go's spdystream).
  it('runtime should support exec over SPDY/3.1 (v4.channel.k8s.io: error/stdin/stdout/stderr streams, stdin FIN)', async () => {
    const pod = await runPod('spdy-exec-pod');
    const id = await startContainer(pod, 'spdy-exec');
    const { url } = await rt('Exec', { container_id: id, cmd: ['sh', '-c', 'read x; echo "got $x"; echo err >&2; cat; exit 3'], stdin: true, stdout: true, stderr: true });
    const d = await dialSpdy(url, ['v4.channel.k8s.io', 'v3.channel.k8s.io']);
    try {
      expect([d.status, d.protocol]).toEqual([101, 'v4.channel.k8s.io']);
      const [error, stdin, stdout, stderr] = await Promise.all(['error', 'stdin', 'stdout', 'stderr'].map((streamtype) => openSpdyStream(d.conn!, { streamtype })));
      const out = Promise.all([readAll(error!), readAll(stdout!), readAll(stderr!)]);
      stdin!.end('hello\nrest\n'); // `cat` ends only on the stdin stream's FIN
      const [status, o, e] = await out;
      expect(o).toBe('got hello\nrest\n');
      expect(e).toBe('err\n');
      expect(JSON.parse(status)).toMatchObject({ status: 'Failure', reason: 'NonZeroExitCode', details: { causes: [{ reason: 'ExitCode', message: '3' }] } });
    } finally {
      d.socket?.destroy();
    }
    await rt('RemovePodSandbox', { pod_sandbox_id: pod.id });
  });

  it("runtime should support port forward over SPDY/3.1 (portforward.k8s.io: a data/error stream pair per connection, to the pod's 127.0.0.1)", async () => {
    const pod = await runPod('spdy-pf-pod');
    await startContainer(pod, 'srv', ['sh', '-c', 'mkdir -p /www && echo port-forwarded > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www']);
    const d = await dialSpdy((await rt('PortForward', { pod_sandbox_id: pod.id, port: [8080] })).url, ['portforward.k8s.io']);
    try {
      expect([d.status, d.protocol]).toEqual([101, 'portforward.k8s.io']);
      let requests = 0;
      const get = async (port: number) => {
        const headers = { port: String(port), requestid: String(requests++) };
        const error = await openSpdyStream(d.conn!, { streamtype: 'error', ...headers });
        const data = await openSpdyStream(d.conn!, { streamtype: 'data', ...headers });
        const got = Promise.all([readAll(data), readAll(error)]);
        data.write('GET /index.html HTTP/1.0\r\n\r\n');
        const [body, err] = await got;
        return { body, err };
      };
      const ok = await waitFor('forwarded port 8080', () => get(8080), (r) => r.body.includes('port-forwarded'));
      expect(ok.body).toMatch(/^HTTP\/1\.[01] 200 OK\r\n[^]*\r\n\r\nport-forwarded\n$/); // httpd closed, so did the data stream
      expect(ok.err).toBe('');
      const refused = await get(8081);
      expect(refused.err).toMatch(new RegExp(`^error forwarding port 8081 to pod ${pod.id}: failed to connect to localhost:8081`));
    } finally {
      d.socket?.destroy();
    }
    await rt('RemovePodSandbox', { pod_sandbox_id: pod.id });
  });
});
