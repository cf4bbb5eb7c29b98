/**
 * CRI conformance client: drives berthd's CRI socket (plugin `cri` turned on in daemon.json)
 * the way critest's suites do, against real runc + conmon — test names mirror critest's
 * ("runtime should support basic operations on container", "should support exec", …): runtime
 * and image basics, ExecSync, a pod's containers sharing its network/IPC/UTS namespaces
 * (pause-less pods), the PodPID/ContainerPID/TARGET PID modes, pod networking, DNS, host ports,
 * seccomp, resources and stats, logs, events; the Docker API sees CRI containers with
 * cri-dockerd's labels and refuses their removal without force, pods and containers survive a
 * berthd SIGKILL, refusals. Pods go on the file's own CNI bridge and subnet (the cri plugin's
 * podBridge/podSubnet): the host reaches a pod's IP over that bridge, stop and remove give the
 * address back (after a SIGKILL too); the bridge is deleted and ip_forward put back even on
 * failure (helpers/cri.ts). Where a `critest` binary is on PATH it runs too (its result is
 * printed). Waits poll with a deadline; nothing asserts how long anything took. Streaming
 * (exec/attach/port forward) is cri-streaming's, CheckpointContainer cri-checkpoint's.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TEST_IMAGE, which } from './helpers/berthd.js';
import { testNetworks } from './helpers/network-host.js';
import { CNI_BIN_DIRS, CONTAINER, DEADLINE_EXCEEDED, FAILED_PRECONDITION, NOT_FOUND, SANDBOX, cniSkip, containerConfig, criSkip as skip, useCriBerthd, waitFor } from './helpers/cri.js';

// The pods' CNI network of this file (its own bridge and subnet; CNI plugins from containernetworking-plugins).
const pods = testNetworks('bq', ['c']).c;

describe.skipIf(skip)(`CRI conformance against berthd${skip ? ` (skipped: ${skip})` : ''}`, () => {
  const h = useCriBerthd(pods);
  const { rt, im, runPod, startContainer, exec } = h;

  it('runtime info should support getting runtime version, status and config', async () => {
    expect(await rt('Version', { version: 'v1' })).toMatchObject({ runtime_name: 'berth', runtime_api_version: 'v1' });
    const st = await rt('Status', {});
    const conds = Object.fromEntries((st.status.conditions as { type: string; status: boolean }[]).map((c) => [c.type, c.status]));
    expect(conds).toEqual({ RuntimeReady: true, NetworkReady: !cniSkip });
    expect((st.runtime_handlers as { name: string }[]).map((h) => h.name)).toContain('');
    expect([0, 1]).toContain((await rt('RuntimeConfig', {})).linux.cgroup_driver);
  });

  it('image should support ImageStatus, ListImages, ImageFsInfo and RemoveImage of an absent image', async () => {
    const st = await im('ImageStatus', { image: { image: TEST_IMAGE } });
    expect(st.image.id).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(st.image.repo_tags).toContain(`${TEST_IMAGE}:latest`);
    const list = (await im('ListImages', {})).images as { id: string }[];
    expect(list.map((i) => i.id)).toContain(st.image.id);
    expect(await im('ImageStatus', { image: { image: 'no/such:image' } })).not.toHaveProperty('image.id');
    const fs_ = await im('ImageFsInfo', {});
    expect(fs_.image_filesystems.length).toBeGreaterThan(0);
    expect(Number(fs_.image_filesystems[0].used_bytes.value)).toBeGreaterThan(0);
    await im('RemoveImage', { image: { image: 'no/such:image' } }); // absent: success
    // A pull from a registry that does not answer fails with an error (loopback only: nothing listens on port 9).
    await expect(im('PullImage', { image: { image: '127.0.0.1:9/none:latest' }, auth: { username: 'u', password: 'p' } })).rejects.toHaveProperty('code');
  });

  it('image should support PullImage with auth and RemoveImage (a local docker-registry with htpasswd)', async (ctx) => {
    if (!which('docker-registry')) return ctx.skip('docker-registry is not installed');
    const { startRegistry } = await import('../../packages/image-store/test/registry-server.js');
    const reg = await startRegistry({ user: 'alice', password: 's3cret' });
    try {
      const name = `${reg.host}/private/busybox:v1`;
      expect((await h.d.docker(['tag', TEST_IMAGE, name])).code).toBe(0);
      const login = await h.d.docker(['login', reg.host, '-u', 'alice', '--password-stdin'], { input: 's3cret' });
      expect(login.code, login.stderr).toBe(0);
      const push = await h.d.docker(['push', name]);
      expect(push.code, push.stderr).toBe(0);
      await im('RemoveImage', { image: { image: name } });
      expect(await im('ImageStatus', { image: { image: name } })).not.toHaveProperty('image.id');
      await expect(im('PullImage', { image: { image: name } })).rejects.toHaveProperty('code');
      const { image_ref } = await im('PullImage', { image: { image: name }, auth: { username: 'alice', password: 's3cret', server_address: reg.host } });
      expect(image_ref).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect((await im('ImageStatus', { image: { image: name } })).image.repo_tags).toContain(name);
      await im('RemoveImage', { image: { image: name } });
    } finally {
      await reg.stop();
    }
  });

  it('runtime should support basic operations on PodSandbox', async () => {
    const pod = await runPod('basic-pod');
    const st = await rt('PodSandboxStatus', { pod_sandbox_id: pod.id });
    expect(st.status).toMatchObject({ id: pod.id, state: SANDBOX.READY, metadata: { name: 'basic-pod', namespace: 'critest' }, labels: { pod: 'basic-pod' } });
    const byLabel = (await rt('ListPodSandbox', { filter: { label_selector: { pod: 'basic-pod' } } })).items as { id: string }[];
    expect(byLabel.map((p) => p.id)).toEqual([pod.id]);
    await rt('StopPodSandbox', { pod_sandbox_id: pod.id });
    expect((await rt('PodSandboxStatus', { pod_sandbox_id: pod.id })).status.state).toBe(SANDBOX.NOTREADY);
    const ready = (await rt('ListPodSandbox', { filter: { id: pod.id, state: { state: SANDBOX.READY } } })).items as unknown[];
    expect(ready).toEqual([]);
    await rt('RemovePodSandbox', { pod_sandbox_id: pod.id });
    await expect(rt('PodSandboxStatus', { pod_sandbox_id: pod.id })).rejects.toMatchObject({ code: NOT_FOUND });
    expect(fs.existsSync(path.join(h.d.execRoot, 'cri', pod.id))).toBe(false);
  });

  it('runtime should support basic operations on container', async () => {
    const pod = await runPod('ctr-pod');
    const { container_id: id } = await rt('CreateContainer', { pod_sandbox_id: pod.id, config: containerConfig('basic'), sandbox_config: pod.config });
    expect((await rt('ContainerStatus', { container_id: id })).status.state).toBe(CONTAINER.CREATED);
    await rt('StartContainer', { container_id: id });
    const st = await rt('ContainerStatus', { container_id: id, verbose: true });
    expect(st.status).toMatchObject({ id, state: CONTAINER.RUNNING, metadata: { name: 'basic' }, labels: { ctr: 'basic' }, annotations: { note: 'basic' } });
    expect(JSON.parse(st.info.info).pid).toBeGreaterThan(0);
    const listed = (await rt('ListContainers', { filter: { pod_sandbox_id: pod.id, state: { state: CONTAINER.RUNNING } } })).containers as { id: string }[];
    expect(listed.map((c) => c.id)).toEqual([id]);
    await rt('StopContainer', { container_id: id, timeout: 2 });
    const stopped = await rt('ContainerStatus', { container_id: id });
    expect(stopped.status.state).toBe(CONTAINER.EXITED);
    expect(stopped.status.exit_code).toBe(137); // sleep ignores SIGTERM as pid 1: killed after the timeout
    await rt('RemoveContainer', { container_id: id });
    await expect(rt('ContainerStatus', { container_id: id })).rejects.toMatchObject({ code: NOT_FOUND });
    await rt('RemovePodSandbox', { pod_sandbox_id: pod.id });
  });

  it('runtime should support exec (ExecSync, with timeout)', async () => {
    const pod = await runPod('exec-pod');
    const id = await startContainer(pod, 'exec');
    expect(await exec(id, ['sh', '-c', 'echo hello; echo oops >&2; exit 3'])).toEqual({ stdout: 'hello\n', stderr: 'oops\n', exit_code: 3 });
    await expect(exec(id, ['sleep', '30'], 1)).rejects.toMatchObject({ code: DEADLINE_EXCEEDED });
    await rt('RemovePodSandbox', { pod_sandbox_id: pod.id });
  });


  it("containers of a pod share the pod's network, IPC and UTS namespaces (pause-less pod)", async () => {
    const pod = await runPod('shared');
    const a = await startContainer(pod, 'a');
    const b = await startContainer(pod, 'b');
    const ns = async (id: string) => (await exec(id, ['sh', '-c', 'readlink /proc/self/ns/net /proc/self/ns/ipc /proc/self/ns/uts; hostname'])).stdout;
    const na = await ns(a);
    expect(na).toBe(await ns(b));
    expect(na.trim().split('\n').at(-1)).toBe('shared-host');
    // Loopback is up in the pod's network namespace; its inode differs from the host's.
    expect((await exec(a, ['sh', '-c', 'cat /sys/class/net/lo/operstate'])).stdout.trim()).toMatch(/unknown|up/);
    expect(na).not.toContain(fs.readlinkSync('/proc/self/ns/net'));
    await rt('RemovePodSandbox', { pod_sandbox_id: pod.id });
  });

  /** The command lines of the processes a container sees (its /proc), one per line. */
  const processesIn = async (id: string) => (await exec(id, ['sh', '-c', 'for f in /proc/[0-9]*/cmdline; do tr "\\000" " " < $f; echo; done'])).stdout;
  const pidNsOpt = (pid: number) => ({ linux: { security_context: { namespace_options: { pid } } } });
  /** Is a host process gone (no /proc entry; a zombie would still have one)? */
  const hostGone = (pid: number) => !fs.existsSync(`/proc/${pid}`);

  it('runtime should support PodPID (a pod-wide PID namespace: its holder is PID 1 and reaps orphans)', async () => {
    const pod = await runPod('podpid', pidNsOpt(0)); // NamespaceMode.POD
    const a = await startContainer(pod, 'a', ['sleep', '3601'], pidNsOpt(0));
    const b = await startContainer(pod, 'b', ['sleep', '3602'], pidNsOpt(0));
    // Each container sees the other's process, and PID 1 is the pod's holder (tini), not its own command.
    expect(await processesIn(a)).toContain('sleep 3602');
    expect(await processesIn(b)).toContain('sleep 3601');
    expect((await exec(a, ['cat', '/proc/1/cmdline'])).stdout).toMatch(/tini/);
    // An orphan (its shell exits at once) is re-parented to PID 1 of the pod and reaped once it exits (a zombie would stay in /proc).
    const orphan = (await exec(a, ['sh', '-c', 'sleep 5 >/dev/null 2>&1 & echo $!'])).stdout.trim();
    expect(orphan).toMatch(/^\d+$/);
    const ppid = (await exec(a, ['sh', '-c', `cut -d' ' -f4 /proc/${orphan}/stat`])).stdout.trim();
    expect(ppid).toBe('1');
    await waitFor('the orphan reaped', async () => (await exec(a, ['sh', '-c', `test -e /proc/${orphan} && cat /proc/${orphan}/stat || echo reaped`])).stdout.trim(), (s) => s === 'reaped');
    // RemovePodSandbox kills the holder.
    const holder = JSON.parse((await rt('PodSandboxStatus', { pod_sandbox_id: pod.id, verbose: true })).info.info).pidHolder as { pid: number };
    expect(hostGone(holder.pid)).toBe(false);
    await rt('RemovePodSandbox', { pod_sandbox_id: pod.id });
    await waitFor('the holder gone', async () => hostGone(holder.pid), (g) => g);
  });

  it('runtime should support ContainerPID (each container of the pod its own PID namespace)', async () => {
    const pod = await runPod('containerpid', pidNsOpt(1)); // NamespaceMode.CONTAINER
    const a = await startContainer(pod, 'a', ['sleep', '3603'], pidNsOpt(1));
    await startContainer(pod, 'b', ['sleep', '3604'], pidNsOpt(1));
    const seen = await processesIn(a);
    expect(seen).toContain('sleep 3603');
    expect(seen).not.toContain('sleep 3604');
    expect((await exec(a, ['cat', '/proc/1/cmdline'])).stdout).toBe('sleep\u00003603\u0000');
    expect(JSON.parse((await rt('PodSandboxStatus', { pod_sandbox_id: pod.id, verbose: true })).info.info).pidHolder).toBeUndefined();
    await rt('RemovePodSandbox', { pod_sandbox_id: pod.id });
  });

  it("runtime should support a TARGET PID namespace (an ephemeral container joins a target container's, as kubectl debug --target)", async () => {
    const pod = await runPod('targetpid', pidNsOpt(1));
    const target = await startContainer(pod, 'app', ['sleep', '3607'], pidNsOpt(1));
    const debug = await startContainer(pod, 'debug', ['sleep', '3608'], { linux: { security_context: { namespace_options: { pid: 3, target_id: target } } } }); // NamespaceMode.TARGET
    expect((await exec(debug, ['cat', '/proc/1/cmdline'])).stdout).toBe('sleep\u00003607\u0000');
    expect(await processesIn(debug)).toContain('sleep 3608');
    // The target must be a container of the same pod.
    const other = await runPod('targetpid-other', pidNsOpt(1));
    const cfg = containerConfig('stray', ['sleep', '3609'], { linux: { security_context: { namespace_options: { pid: 3, target_id: target } } } });
    await expect(rt('CreateContainer', { pod_sandbox_id: other.id, config: cfg, sandbox_config: other.config })).rejects.toMatchObject({ code: 3 }); // INVALID_ARGUMENT
    await rt('RemovePodSandbox', { pod_sandbox_id: other.id });
    await rt('RemovePodSandbox', { pod_sandbox_id: pod.id });
  });

  /** host-local's record of an address the pod network handed out (gone once it is released). */
  const ipamFile = (ip: string) => path.join(h.d.dataRoot, 'cri', 'cni', 'ipam', 'berth-cri', ip);

  it('runtime should support pod networking: the pod gets an IP on the CNI bridge, the host reaches it, stop releases it', async (ctx) => {
    if (cniSkip) return ctx.skip(cniSkip);
    const pod = await runPod('net');
    const ip = (await rt('PodSandboxStatus', { pod_sandbox_id: pod.id })).status.network.ip as string;
    expect(ip.startsWith(`${pods.net}.`) && ip !== pods.gateway, ip).toBe(true);
    expect(fs.existsSync(ipamFile(ip))).toBe(true);
    const id = await startContainer(pod, 'srv', ['sh', '-c', 'while true; do echo hello-pod | nc -l -p 7777; done']);
    expect((await exec(id, ['ip', '-4', 'addr', 'show', 'eth0'])).stdout).toContain(`${ip}/24`);
    // The host, over the pod bridge only: ping, then a TCP connection to the pod's listener.
    const ping = spawnSync(which('ping') ? 'ping' : 'busybox', [...(which('ping') ? [] : ['ping']), '-c', '1', '-W', '5', '-I', pods.bridge, ip], { encoding: 'utf8' });
    expect(ping.status, `${ping.stdout}${ping.stderr}`).toBe(0);
    const got = await waitFor(
      'pod listener',
      () =>
        new Promise<string>((resolve) => {
          const sock = net.connect({ host: ip, port: 7777 });
          let data = '';
          sock.on('data', (b) => (data += b.toString()));
          sock.on('close', () => resolve(data));
          sock.on('error', () => resolve(''));
        }),
      (t) => t.includes('hello-pod'),
    );
    expect(got.trim()).toBe('hello-pod');
    await rt('StopPodSandbox', { pod_sandbox_id: pod.id });
    expect((await rt('PodSandboxStatus', { pod_sandbox_id: pod.id })).status.network.ip).toBe('');
    expect(fs.existsSync(ipamFile(ip))).toBe(false);
    await rt('StopPodSandbox', { pod_sandbox_id: pod.id }); // again: nothing to release, not an error
    await rt('RemovePodSandbox', { pod_sandbox_id: pod.id });
  });

  it('runtime should support DNS config (the pod\'s resolv.conf in each of its containers)', async () => {
    const pod = await runPod('dns', { dns_config: { servers: ['10.231.77.53'], searches: ['critest.svc.cluster.local', 'cluster.local'], options: ['ndots:5'] } });
    const ids = [await startContainer(pod, 'a'), await startContainer(pod, 'b')];
    for (const id of ids) {
      const lines = (await exec(id, ['cat', '/etc/resolv.conf'])).stdout.split('\n').filter((l) => /^(search|domain|nameserver|options)\b/.test(l));
      expect(lines).toEqual(['search critest.svc.cluster.local cluster.local', 'nameserver 10.231.77.53', 'options ndots:5']);
    }
    await rt('RemovePodSandbox', { pod_sandbox_id: pod.id });
  });

  it('runtime should support port mapping with host port (CNI portmap)', async (ctx) => {
    if (cniSkip) return ctx.skip(cniSkip);
    if (!CNI_BIN_DIRS.some((dir) => fs.existsSync(path.join(dir, 'portmap'))) || !which('iptables')) return ctx.skip('the CNI plugin portmap or iptables is missing');
    const HOST_PORT = 18193;
    const pod = await runPod('hostport', { port_mappings: [{ protocol: 0, container_port: 80, host_port: HOST_PORT }] });
    await startContainer(pod, 'web', ['sh', '-c', 'mkdir -p /www && echo host-port > /www/index.html && exec httpd -f -p 80 -h /www']);
    // From the host to one of its own addresses (its address on the pod bridge): portmap's DNAT to the pod.
    const get = () =>
      new Promise<string>((resolve) => {
        const sock = net.connect({ host: pods.gateway, port: HOST_PORT });
        let data = '';
        sock.on('connect', () => sock.write('GET /index.html HTTP/1.0\r\n\r\n'));
        sock.on('data', (b) => (data += b.toString()));
        sock.on('close', () => resolve(data));
        sock.on('error', () => resolve(''));
      });
    expect(await waitFor('host port', get, (t) => t.includes('host-port'))).toMatch(/^HTTP\/1\.[01] 200 OK/);
    const dnat = () => spawnSync('iptables', ['-w', '-t', 'nat', '-S'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.includes(`--dport ${HOST_PORT}`));
    expect(dnat().length).toBeGreaterThan(0);
    await rt('StopPodSandbox', { pod_sandbox_id: pod.id });
    expect(dnat()).toEqual([]); // the DEL took the port back
    await rt('RemovePodSandbox', { pod_sandbox_id: pod.id });
  });

  it('runtime should support seccomp RuntimeDefault and Unconfined, and run-as-user', async () => {
    const pod = await runPod('sec');
    const seccompOf = async (id: string) => /Seccomp:\s+(\d)/.exec((await exec(id, ['cat', '/proc/self/status'])).stdout)?.[1];
    const def = await startContainer(pod, 'default', undefined, { linux: { security_context: { seccomp: { profile_type: 0 }, run_as_user: { value: 1000 } } } });
    const unc = await startContainer(pod, 'unconfined', undefined, { linux: { security_context: { seccomp: { profile_type: 1 } } } });
    expect(await seccompOf(def)).toBe('2');
    expect(await seccompOf(unc)).toBe('0');
    expect((await exec(def, ['id', '-u'])).stdout.trim()).toBe('1000');
    await rt('RemovePodSandbox', { pod_sandbox_id: pod.id });
  });

  it('runtime should support UpdateContainerResources and container/pod stats', async () => {
    const pod = await runPod('stats');
    const id = await startContainer(pod, 'stats');
    await rt('UpdateContainerResources', { container_id: id, linux: { memory_limit_in_bytes: 64 * 1024 * 1024 } });
    const insp = await h.d.docker(['inspect', '--format', '{{.HostConfig.Memory}}', id]);
    expect(insp.stdout.trim()).toBe(String(64 * 1024 * 1024));
    const cs = await rt('ContainerStats', { container_id: id });
    expect(cs.stats.attributes).toMatchObject({ id, metadata: { name: 'stats' } });
    expect(Number(cs.stats.memory.usage_bytes.value)).toBeGreaterThan(0);
    const list = (await rt('ListContainerStats', { filter: { pod_sandbox_id: pod.id } })).stats as { attributes: { id: string } }[];
    expect(list.map((s) => s.attributes.id)).toEqual([id]);
    const ps = await rt('PodSandboxStats', { pod_sandbox_id: pod.id });
    expect(ps.stats.attributes.id).toBe(pod.id);
    expect((ps.stats.linux.containers as { attributes: { id: string } }[]).map((c) => c.attributes.id)).toEqual([id]);
    await rt('RemovePodSandbox', { pod_sandbox_id: pod.id });
  });

  it('runtime should support container logs in the CRI format at the path kubelet gives, and ReopenContainerLog', async () => {
    const logDir = path.join(h.d.dir, 'pod-logs');
    const pod = await runPod('logs', { log_directory: logDir });
    const script = 'echo out; echo err >&2; printf partial; sleep 0.5; echo; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo after';
    const id = await startContainer(pod, 'log', ['sh', '-c', script], { log_path: 'log/0.log' });
    const file = path.join(logDir, 'log/0.log');
    expect((await rt('ContainerStatus', { container_id: id })).status.log_path).toBe(file);
    const first = await waitFor('log lines', async () => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : ''), (t) => t.split('\n').length > 4);
    const lines = first.split('\n').filter(Boolean).map((l) => l.replace(/^\S+ /, ''));
    // Per stream in order (stdout and stderr are separate pipes: their interleaving is not fixed).
    expect(lines.filter((l) => l.startsWith('stdout'))).toEqual(['stdout F out', 'stdout P partial', 'stdout F ']);
    expect(lines.filter((l) => l.startsWith('stderr'))).toEqual(['stderr F err']);
    expect(first.split(' ')[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(Z|[+-]\d\d:\d\d)$/);
    // kubelet's rotation: rename, ReopenContainerLog, and the next lines go to a new file.
    fs.renameSync(file, `${file}.1`);
    await rt('ReopenContainerLog', { container_id: id });
    await exec(id, ['touch', '/tmp/go']);
    const after = await waitFor('new log file', async () => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : ''), (t) => t.includes('after'));
    expect(after.trim().split('\n').map((l) => l.replace(/^\S+ /, ''))).toEqual(['stdout F after']);
    await rt('RemovePodSandbox', { pod_sandbox_id: pod.id });
  });

  it('runtime should support GetContainerEvents (created, started, stopped, deleted)', async () => {
    const seen: { id: string; type: number }[] = [];
    const stop = h.cri.events((ev) => seen.push({ id: ev.container_id as string, type: ev.container_event_type as number }));
    try {
      const pod = await runPod('events');
      const id = await startContainer(pod, 'ev', ['true']);
      await waitFor('exit', () => rt('ContainerStatus', { container_id: id }), (s) => s.status.state === CONTAINER.EXITED);
      await rt('RemoveContainer', { container_id: id });
      const types = await waitFor('events', async () => seen.filter((e) => e.id === id).map((e) => e.type), (t) => t.includes(3));
      expect(types).toEqual([0, 1, 2, 3]);
      await rt('RemovePodSandbox', { pod_sandbox_id: pod.id });
    } finally {
      stop();
    }
  });


  it('the Docker API sees CRI containers with cri-dockerd labels and refuses removing a ready pod\'s container without force', async () => {
    const pod = await runPod('docker-view');
    const id = await startContainer(pod, 'web');
    const ps = await h.d.docker(['ps', '--filter', `label=io.kubernetes.sandbox.id=${pod.id}`, '--format', '{{.ID}} {{.Names}} {{.Label "io.kubernetes.docker.type"}}']);
    expect(ps.stdout.trim()).toBe(`${id.slice(0, 12)} k8s_web_docker-view_critest_${(pod.config.metadata as { uid: string }).uid}_0 container`);
    await rt('StopContainer', { container_id: id, timeout: 0 });
    const rm = await h.d.docker(['rm', id]);
    expect(rm.code).not.toBe(0);
    expect(rm.stderr).toContain('use force');
    expect((await rt('ContainerStatus', { container_id: id })).status.state).toBe(CONTAINER.EXITED);
    expect((await h.d.docker(['rm', '-f', id])).code).toBe(0);
    await rt('RemovePodSandbox', { pod_sandbox_id: pod.id });
  });

  it('pods and containers survive a berthd SIGKILL', async () => {
    const pod = await runPod('survivor');
    const id = await startContainer(pod, 'keep');
    const ip = (await rt('PodSandboxStatus', { pod_sandbox_id: pod.id })).status.network.ip as string;
    const sharedPid = await runPod('survivor-pid', pidNsOpt(0)); // its PID namespace is held by a process berthd started
    await startContainer(sharedPid, 'before', ['sleep', '3605'], pidNsOpt(0));
    await h.restartAfterSigkill();
    const pods = (await rt('ListPodSandbox', { filter: { id: pod.id } })).items as { id: string; state: number }[];
    expect(pods).toEqual([expect.objectContaining({ id: pod.id, state: SANDBOX.READY })]);
    const st = await waitFor('restored', () => rt('ContainerStatus', { container_id: id }), (s) => s.status.state !== undefined);
    expect(st.status.state).toBe(CONTAINER.RUNNING);
    expect((await exec(id, ['echo', 'still here'])).stdout).toBe('still here\n');
    // The pod-wide PID namespace's holder was found again: a container started now joins it.
    const after = await startContainer(sharedPid, 'after', ['sleep', '3606'], pidNsOpt(0));
    expect(await processesIn(after)).toContain('sleep 3605');
    await rt('RemovePodSandbox', { pod_sandbox_id: sharedPid.id });
    await rt('RemovePodSandbox', { pod_sandbox_id: pod.id });
    await expect(rt('StartContainer', { container_id: id })).rejects.toMatchObject({ code: NOT_FOUND });
    // Its address was given back by the berthd after the SIGKILL (the CNI result cache on disk).
    if (!cniSkip) expect(fs.existsSync(ipamFile(ip))).toBe(false);
  });

  it('critest, where it is on PATH', async (ctx) => {
    if (!which('critest')) return ctx.skip('critest is not on PATH (it cannot be installed on these machines)');
    const r = spawnSync('critest', [`--runtime-endpoint=unix://${h.socket}`, `--image-endpoint=unix://${h.socket}`, '--ginkgo.focus=runtime should support basic operations'], { encoding: 'utf8', timeout: 600_000 });
    console.log(`critest exit ${r.status}:\n${r.stdout}\n${r.stderr}`);
    expect(r.status).toBe(0);
  });

  it('refuses CreateContainer in a stopped pod', async () => {
    const pod = await runPod('stopped');
    await rt('StopPodSandbox', { pod_sandbox_id: pod.id });
    await expect(rt('CreateContainer', { pod_sandbox_id: pod.id, config: containerConfig('late'), sandbox_config: pod.config })).rejects.toMatchObject({ code: FAILED_PRECONDITION });
    await rt('RemovePodSandbox', { pod_sandbox_id: pod.id });
  });
});
