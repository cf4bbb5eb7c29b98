/**
 * The gRPC connection of the containerd backend: one client per containerd service (tasks,
 * containers, version) on containerd's unix socket, every call in berth's containerd namespace
 * (the `containerd-namespace` metadata containerd reads), with a deadline, cancellable through
 * an AbortSignal, and its failure turned into berth's typed error (proto.ts `fromGrpcError`).
 */
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import {
  containerdServices,
  fromGrpcError,
  type AnyMessage,
  type ProcessMessage,
  type Timestamp,
} from './proto.js';

export interface ContainerdClientOptions {
  /** containerd's gRPC socket. */
  address: string;
  /** The containerd namespace every call is made in. */
  namespace: string;
  /** Deadline of a call that is not a wait (default 60 s: a task create runs runc). */
  callTimeoutMs?: number;
}

export interface ContainerMessage {
  id: string;
  labels: Record<string, string>;
  runtime: { name: string; options?: AnyMessage | null } | null;
  spec: AnyMessage | null;
}

export interface ExitMessage {
  exit_status: number;
  exited_at: Timestamp | null;
}

type Unary = (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => grpc.ClientUnaryCall;

export class ContainerdClient {
  private readonly tasks: grpc.Client;
  private readonly containers: grpc.Client;
  private readonly version: grpc.Client;
  private readonly timeoutMs: number;

  constructor(private readonly opts: ContainerdClientOptions) {
    const { Tasks, Containers, Version } = containerdServices();
    const target = `unix://${path.resolve(opts.address)}`;
    const creds = grpc.credentials.createInsecure();
    const channel = { 'grpc.max_receive_message_length': 16 * 1024 * 1024, 'grpc.default_authority': 'localhost' };
    this.tasks = new Tasks(target, creds, channel);
    this.containers = new Containers(target, creds, channel);
    this.version = new Version(target, creds, channel);
    this.timeoutMs = opts.callTimeoutMs ?? 60_000;
  }

  get address(): string {
    return this.opts.address;
  }

  /** One unary call: namespace metadata, deadline (none with `wait`), AbortSignal cancels it. */
  private metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    md.set('containerd-namespace', this.opts.namespace);
    return md;
  }

  private call<T>(client: grpc.Client, method: string, req: unknown, what: string, o: { wait?: boolean; timeoutMs?: number; signal?: AbortSignal } = {}): Promise<T> {
    const md = this.metadata();
    const callOpts: grpc.CallOptions = o.wait ? {} : { deadline: Date.now() + (o.timeoutMs ?? this.timeoutMs) };
    const fn = (client as unknown as Record<string, Unary>)[method].bind(client);
    return new Promise<T>((resolve, reject) => {
      if (o.signal?.aborted) {
        reject(fromGrpcError({ code: grpc.status.CANCELLED, details: 'cancelled' }, what));
        return;
      }
      const onAbort = (): void => call.cancel();
      const call = fn(req, md, callOpts, (err, res) => {
        o.signal?.removeEventListener('abort', onAbort);
        if (err) reject(fromGrpcError(err, what));
        else resolve(res as T);
      });
      o.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  // ---------------------------------------------------------------- version

  /** containerd's version: the backend's check that containerd answers on its socket. */
  async serverVersion(timeoutMs = 5000): Promise<{ version: string; revision: string }> {
    return this.call(this.version, 'Version', {}, 'version', { timeoutMs });
  }

  // ---------------------------------------------------------------- containers

  async createContainer(c: { id: string; labels: Record<string, string>; runtime: string; spec: AnyMessage }): Promise<void> {
    await this.call(this.containers, 'Create', { container: { id: c.id, labels: c.labels, runtime: { name: c.runtime }, spec: c.spec } }, `create container ${c.id}`);
  }

  async getContainer(id: string): Promise<ContainerMessage> {
    const r = await this.call<{ container: ContainerMessage }>(this.containers, 'Get', { id }, `container ${id}`);
    return r.container;
  }

  async listContainers(): Promise<ContainerMessage[]> {
    const r = await this.call<{ containers: ContainerMessage[] }>(this.containers, 'List', { filters: [] }, 'list containers');
    return r.containers ?? [];
  }

  async deleteContainer(id: string): Promise<void> {
    await this.call(this.containers, 'Delete', { id }, `delete container ${id}`);
  }

  // ---------------------------------------------------------------- tasks

  async createTask(t: { id: string; stdin: string; stdout: string; stderr: string; terminal: boolean; options: AnyMessage }): Promise<number> {
    const r = await this.call<{ pid: number }>(
      this.tasks,
      'Create',
      { container_id: t.id, stdin: t.stdin, stdout: t.stdout, stderr: t.stderr, terminal: t.terminal, options: t.options },
      `create task ${t.id}`,
    );
    return r.pid;
  }

  async start(id: string, execId = ''): Promise<number> {
    const r = await this.call<{ pid: number }>(this.tasks, 'Start', { container_id: id, exec_id: execId }, `start ${execId ? `exec ${execId} of ` : ''}task ${id}`);
    return r.pid;
  }

  /** The task's init (or an exec process); NotFound when there is none. */
  async get(id: string, execId = ''): Promise<ProcessMessage> {
    const r = await this.call<{ process: ProcessMessage }>(this.tasks, 'Get', { container_id: id, exec_id: execId }, `task ${id}`);
    return r.process;
  }

  async listTasks(): Promise<ProcessMessage[]> {
    const r = await this.call<{ tasks: ProcessMessage[] }>(this.tasks, 'List', { filter: '' }, 'list tasks');
    return r.tasks ?? [];
  }

  async kill(id: string, signal: number, o: { all?: boolean; execId?: string } = {}): Promise<void> {
    await this.call(this.tasks, 'Kill', { container_id: id, exec_id: o.execId ?? '', signal, all: o.all ?? false }, `kill task ${id}`);
  }

  async deleteTask(id: string): Promise<ExitMessage> {
    return this.call(this.tasks, 'Delete', { container_id: id }, `delete task ${id}`);
  }

  async exec(e: { id: string; execId: string; stdin: string; stdout: string; stderr: string; terminal: boolean; spec: AnyMessage }): Promise<void> {
    await this.call(
      this.tasks,
      'Exec',
      { container_id: e.id, exec_id: e.execId, stdin: e.stdin, stdout: e.stdout, stderr: e.stderr, terminal: e.terminal, spec: e.spec },
      `exec ${e.execId} in task ${e.id}`,
    );
  }

  async deleteProcess(id: string, execId: string): Promise<void> {
    await this.call(this.tasks, 'DeleteProcess', { container_id: id, exec_id: execId }, `delete exec ${execId} of task ${id}`);
  }

  async resizePty(id: string, size: { width: number; height: number }, execId = ''): Promise<void> {
    await this.call(this.tasks, 'ResizePty', { container_id: id, exec_id: execId, width: size.width, height: size.height }, `resize task ${id}`);
  }

  /** The shim closes its own write end of the stdin FIFO: once ours is closed too, the process reads to the end of its input. */
  async closeStdin(id: string, execId = ''): Promise<void> {
    await this.call(this.tasks, 'CloseIO', { container_id: id, exec_id: execId, stdin: true }, `close stdin of task ${id}`);
  }

  async pause(id: string): Promise<void> {
    await this.call(this.tasks, 'Pause', { container_id: id }, `pause task ${id}`);
  }

  async resume(id: string): Promise<void> {
    await this.call(this.tasks, 'Resume', { container_id: id }, `resume task ${id}`);
  }

  async update(id: string, resources: AnyMessage): Promise<void> {
    await this.call(this.tasks, 'Update', { container_id: id, resources }, `update task ${id}`);
  }

  /** Resolves with the process's exit (at once when it has exited already); no deadline. */
  wait(id: string, execId: string, signal: AbortSignal): Promise<ExitMessage> {
    return this.call(this.tasks, 'Wait', { container_id: id, exec_id: execId }, `wait for ${execId ? `exec ${execId} of ` : ''}task ${id}`, { wait: true, signal });
  }

  close(): void {
    this.tasks.close();
    this.containers.close();
    this.version.close();
  }
}
