/**
 * The last guard (last-guard.ts): an uncaught exception or unhandled rejection raised in a
 * request's own context ends that request (500 before the head, a cut connection after it)
 * and the daemon keeps serving; one of unknown origin exits with EXIT_UNCAUGHT. The real
 * process-level behaviour of berthd is proven in test/e2e/daemon-disconnect.e2e.test.ts.
 */
import { EventEmitter } from 'node:events';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EXIT_UNCAUGHT, apiRoutes, buildApp, installLastGuard, openInjector, requestScope, type GuardTarget, type Injector, type LastGuard } from '../src/index.js';
import { MemoryLogger } from '@berth/core';
import { fakePort } from './helpers/fake-port.js';

describe('last guard', () => {
  let target: EventEmitter;
  let exits: number[];
  let logger: MemoryLogger;
  let guard: LastGuard;
  let inj: Injector;

  beforeEach(async () => {
    target = new EventEmitter();
    exits = [];
    logger = new MemoryLogger();
    guard = installLastGuard({ logger, exit: (c) => exits.push(c), target: target as unknown as GuardTarget });
    const throwLater = (kind: 'uncaughtException' | 'unhandledRejection', headFirst: boolean) => async (ctx: { res: import('node:http').ServerResponse }) => {
      if (headFirst) {
        ctx.res.writeHead(200, { 'Content-Type': 'application/json' });
        ctx.res.write('{"partial":');
      }
      // A timer of the request, outside its promise chain; the handler never settles.
      await new Promise(() => setTimeout(() => target.emit(kind, new Error(`boom ${kind}`)), 5));
    };
    const routes = [
      ...apiRoutes(fakePort()),
      { method: 'GET' as const, path: '/boom/uncaught', handler: throwLater('uncaughtException', false) },
      { method: 'GET' as const, path: '/boom/rejection', handler: throwLater('unhandledRejection', false) },
      { method: 'GET' as const, path: '/boom/streaming', handler: throwLater('uncaughtException', true) },
    ];
    inj = await openInjector(buildApp({ routes, logger }));
  });
  afterEach(async () => {
    guard.uninstall();
    await inj.close();
  });

  it('an uncaught exception in a request ends that request with a 500; the daemon keeps serving', async () => {
    const r = await inj.request({ url: '/boom/uncaught' });
    expect(r.statusCode).toBe(500);
    expect(r.json().message).toBe('boom uncaughtException');
    expect(exits).toEqual([]);
    expect(guard.requestErrors).toBe(1);
    const logged = logger.entries.find((l) => l.msg.startsWith('uncaught exception in a request'));
    expect(logged?.fields).toMatchObject({ method: 'GET', path: '/boom/uncaught' });
    expect(String(logged?.fields?.error)).toContain('boom uncaughtException');
    expect((await inj.request({ url: '/_ping' })).text).toBe('OK');
  });

  it('an unhandled rejection in a request: the same', async () => {
    const r = await inj.request({ url: '/boom/rejection' });
    expect(r.statusCode).toBe(500);
    expect(exits).toEqual([]);
    expect(guard.requestErrors).toBe(1);
    expect((await inj.request({ url: '/_ping' })).statusCode).toBe(200);
  });

  it('after the head is sent, the response is cut off, never ended cleanly', async () => {
    await expect(inj.request({ url: '/boom/streaming' })).rejects.toThrow();
    expect(exits).toEqual([]);
    expect((await inj.request({ url: '/_ping' })).statusCode).toBe(200);
  });

  it('an error of unknown origin exits with EXIT_UNCAUGHT after logging its stack', () => {
    target.emit('uncaughtException', new Error('engine fault'));
    expect(exits).toEqual([EXIT_UNCAUGHT]);
    target.emit('unhandledRejection', 'not even an Error');
    expect(exits).toEqual([EXIT_UNCAUGHT, EXIT_UNCAUGHT]);
    const logged = logger.entries.filter((l) => l.msg.includes('of unknown origin'));
    expect(logged).toHaveLength(2);
    expect(String(logged[0].fields?.error)).toContain('engine fault');
    expect(guard.requestErrors).toBe(0);
  });

  it('an error in the context of a request that has ended is of unknown origin', () => {
    requestScope.run({ method: 'GET', path: '/x', ended: true, fail: () => expect.unreachable() }, () => {
      target.emit('uncaughtException', new Error('late'));
    });
    expect(exits).toEqual([EXIT_UNCAUGHT]);
  });
});
