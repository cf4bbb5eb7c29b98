/** Exec routes: create, start (hijacked, TTY or multiplexed, detach), resize, inspect. */
import { ConflictError, InvalidParameterError, NotImplementedError, errorMessage } from '@berth/core';
import type { EnginePort, ExecPort, ExecCreateRequest } from '../port.js';
import { intValue, readJsonBody, sendEmpty, sendJson } from '../http.js';
import type { RequestContext, Route } from '../router.js';
import { detachKeysFrom, hijackSession } from '../hijack-io.js';

function execPort(port: EnginePort): ExecPort {
  if (!port.exec) throw new NotImplementedError('exec is not supported by this daemon\'s engine');
  return port.exec;
}

function checkExecCreate(body: Record<string, unknown>): ExecCreateRequest {
  const bools = ['AttachStdin', 'AttachStdout', 'AttachStderr', 'Tty', 'Privileged'] as const;
  for (const b of bools) if (body[b] !== undefined && body[b] !== null && typeof body[b] !== 'boolean') {
    throw new InvalidParameterError(`json: cannot unmarshal ${typeof body[b]} into Go struct field ExecOptions.${b} of type bool`);
  }
  for (const s of ['DetachKeys', 'User', 'WorkingDir'] as const) if (body[s] !== undefined && body[s] !== null && typeof body[s] !== 'string') {
    throw new InvalidParameterError(`json: cannot unmarshal ${typeof body[s]} into Go struct field ExecOptions.${s} of type string`);
  }
  let cmd = body.Cmd;
  if (typeof cmd === 'string') cmd = [cmd];
  if (cmd !== undefined && cmd !== null && (!Array.isArray(cmd) || cmd.some((x) => typeof x !== 'string'))) {
    throw new InvalidParameterError('json: cannot unmarshal into Go struct field ExecOptions.Cmd of type []string');
  }
  if (!Array.isArray(cmd) || cmd.length === 0) throw new InvalidParameterError('No exec command specified');
  const env = body.Env;
  if (env !== undefined && env !== null && (!Array.isArray(env) || env.some((x) => typeof x !== 'string'))) {
    throw new InvalidParameterError('json: cannot unmarshal into Go struct field ExecOptions.Env of type []string');
  }
  const cs = body.ConsoleSize;
  if (cs !== undefined && cs !== null && (!Array.isArray(cs) || cs.length !== 2 || cs.some((x) => typeof x !== 'number' || x < 0))) {
    throw new InvalidParameterError('invalid ConsoleSize: expected [height, width]');
  }
  if (typeof body.DetachKeys === 'string' && body.DetachKeys !== '') detachKeysFrom(body.DetachKeys);
  return { ...(body as unknown as ExecCreateRequest), Cmd: cmd as string[] };
}

export function execRoutes(port: EnginePort): Route[] {
  const create = async (ctx: RequestContext) => {
    const req = checkExecCreate((await readJsonBody(ctx)) as Record<string, unknown>);
    const ex = execPort(port);
    const c = await port.containers.inspect(ctx.params.id);
    const r = await ex.create(c.ID, req);
    sendJson(ctx.res, 201, { Id: r.id });
  };

  const start = async (ctx: RequestContext) => {
    const body = ((await readJsonBody(ctx, { optional: true })) ?? {}) as Record<string, unknown>;
    for (const b of ['Detach', 'Tty'] as const) if (body[b] !== undefined && typeof body[b] !== 'boolean') {
      throw new InvalidParameterError(`json: cannot unmarshal ${typeof body[b]} into Go struct field ExecStartOptions.${b} of type bool`);
    }
    const ex = execPort(port);
    const info = await ex.inspect(ctx.params.id);
    if (info.Running) throw new ConflictError(`Error: Exec command ${info.ID} is already running`);
    const detach = body.Detach === true;
    // dockerd: the start request's Tty decides the framing (raw or stdcopy frames); the process
    // has a terminal when the exec was created with Tty. A client that leaves Tty out gets frames.
    const tty = body.Tty === true;
    if (detach) {
      await ex.start(info.ID, { detach: true, tty }, { stdin: null, stdout: null, stderr: null }, new AbortController().signal);
      // dockerd answers a detached start with an empty 200
      sendEmpty(ctx.res, 200);
      return;
    }
    const stdin = info.OpenStdin ? detachKeysFrom(info.DetachKeys || null) : null;
    await hijackSession(ctx, { tty, stdin, stdout: info.OpenStdout, stderr: info.OpenStderr }, async (io, signal) => {
      try {
        await ex.start(info.ID, { detach: false, tty }, io, signal);
      } catch (err) {
        // dockerd: once the connection is taken over, a failed start is told in the stream; the
        // client reads the exit code from inspect (127 for a command that is not found)
        const out = io.stdout ?? io.stderr;
        if (!out) throw err;
        out.write(`${errorMessage(err)}\r\n`);
      }
    });
  };

  const resize = async (ctx: RequestContext) => {
    const h = intValue(ctx.query, 'h', undefined);
    const w = intValue(ctx.query, 'w', undefined);
    if (h === undefined || w === undefined || h < 0 || w < 0) throw new InvalidParameterError('Bad parameters: h and w must be non-negative integers');
    await execPort(port).resize(ctx.params.id, { height: h, width: w });
    sendEmpty(ctx.res, 200);
  };

  const inspect = async (ctx: RequestContext) => {
    sendJson(ctx.res, 200, await execPort(port).inspect(ctx.params.id));
  };

  return [
    { method: 'POST', path: '/containers/{id}/exec', handler: create },
    { method: 'POST', path: '/exec/{id}/start', handler: start, hijack: true },
    { method: 'POST', path: '/exec/{id}/resize', handler: resize },
    { method: 'GET', path: '/exec/{id}/json', handler: inspect },
  ];
}
