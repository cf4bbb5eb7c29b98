// A minimal "daemon" for the runtime e2e tests: an Engine with the OCI backend in its own
// process, driven by JSON lines on stdin (one reply line per request on stdout), so that a
// test can SIGKILL it while containers run and start another one on the same roots.
// Usage: node runtime-daemon-child.mjs DATA_ROOT EXEC_ROOT [name=path ...extra runtimes]
import 'reflect-metadata';
import { createInterface } from 'node:readline';
import { Engine } from '@berth/core';
import { buildRuntimes, ociRuntimePlugin } from '@berth/runtime-oci';

const [dataRoot, execRoot, ...extra] = process.argv.slice(2);
const { runtimes, defaultRuntime } = buildRuntimes({ addRuntime: extra });
const engine = await Engine.create({ dataRoot, execRoot, plugins: [ociRuntimePlugin({ runtimes, defaultRuntime })], defaultRuntime, liveRestore: true });

const ops = {
  create: (a) => engine.containers.create(a),
  start: (a) => engine.containers.start(a.id),
  stop: (a) => engine.containers.stop(a.id, { timeout: a.timeout }),
  wait: (a) => engine.containers.wait(a.id, a.condition ?? 'not-running'),
  inspect: (a) => engine.containers.inspect(a.id),
  remove: (a) => engine.containers.remove(a.id, { force: !!a.force }),
  list: () => engine.containers.list().map((r) => ({ Id: r.ID, State: r.State })),
  pause: (a) => engine.containers.pause(a.id),
  unpause: (a) => engine.containers.unpause(a.id),
  // Runs an exec to completion and answers with its output and exit code.
  exec: async (a) => {
    const { Id } = await engine.execs.create(a.id, { Cmd: a.cmd, Env: a.env, User: a.user, WorkingDir: a.workdir, AttachStdout: true, AttachStderr: true });
    const out = [];
    const err = [];
    const sink = (arr) => ({ write: (d) => (arr.push(Buffer.from(d)), true), end() {}, on() {}, once() {}, emit() {} });
    const session = await engine.execs.start(Id, { streams: { stdout: sink(out), stderr: sink(err) } });
    const exitCode = await session.exited;
    return { exitCode, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), inspect: engine.execs.inspect(Id) };
  },
};

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  let req;
  try {
    req = JSON.parse(line);
  } catch {
    return;
  }
  const op = ops[req.op];
  Promise.resolve()
    .then(() => (op ? op(req.args ?? {}) : Promise.reject(new Error(`unknown op ${req.op}`))))
    .then(
      (value) => process.stdout.write(`${JSON.stringify({ seq: req.seq, ok: true, value: value ?? null })}\n`),
      (err) => process.stdout.write(`${JSON.stringify({ seq: req.seq, ok: false, error: String(err?.message ?? err), kind: err?.kind })}\n`),
    );
});
rl.on('close', async () => {
  await engine.close();
  process.exit(0);
});
process.stdout.write(`${JSON.stringify({ ready: true, pid: process.pid })}\n`);
