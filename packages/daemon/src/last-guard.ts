/**
 * berthd's last guard: what an uncaught exception or an unhandled rejection does.
 *
 * - Attributable to a request still in progress (the error arose in that request's own async
 *   context: its handler, its timers, its promise chain): the request is ended, the error is
 *   logged with method, path and stack and counted; the daemon keeps serving everyone else.
 *   (As Go's net/http recovers a panicking handler in dockerd.)
 * - Of unknown origin (engine, runtime monitors, timers outside any request, or a request that
 *   has already ended): the state of the daemon is unknown, so it logs the stack and exits
 *   with EXIT_UNCAUGHT at once — no graceful shutdown, which would stop every container. The
 *   containers keep running under their monitors; a supervisor (systemd Restart=on-failure)
 *   restarts berthd, which restores them. The stale lock, pidfile and socket of the dead
 *   process are taken over at the next start.
 *
 * The request's context comes from `requestScope`, entered by the app for every request.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Logger } from '@berth/core';

export interface RequestScope {
  readonly method: string;
  readonly path: string;
  /** True once the request has ended (its errors are then of unknown origin). */
  readonly ended: boolean;
  /** End the request because of `err`. */
  fail(err: Error): void;
}

/** The request whose async context runs now (undefined outside any request). */
export const requestScope = new AsyncLocalStorage<RequestScope>();

/** berthd's exit status after an error of unknown origin (BSD sysexits' EX_SOFTWARE). */
export const EXIT_UNCAUGHT = 70;

export interface GuardTarget {
  on(event: 'uncaughtException', listener: (err: unknown) => void): unknown;
  on(event: 'unhandledRejection', listener: (reason: unknown) => void): unknown;
  off(event: 'uncaughtException', listener: (err: unknown) => void): unknown;
  off(event: 'unhandledRejection', listener: (reason: unknown) => void): unknown;
}

export interface LastGuard {
  /** Errors the guard ended a request for, since it was installed. */
  readonly requestErrors: number;
  uninstall(): void;
}

function asError(v: unknown): Error {
  return v instanceof Error ? v : new Error(`non-error thrown: ${String(v)}`);
}

export function installLastGuard(opts: { logger: Logger; exit?: (code: number) => void; target?: GuardTarget }): LastGuard {
  const target: GuardTarget = opts.target ?? process;
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  let requestErrors = 0;
  const handle = (kind: 'uncaught exception' | 'unhandled rejection') => (raw: unknown) => {
    const err = asError(raw);
    const scope = requestScope.getStore();
    if (scope && !scope.ended) {
      requestErrors++;
      opts.logger.error(`${kind} in a request: the request is ended, the daemon keeps serving`, {
        method: scope.method,
        path: scope.path,
        error: err.stack ?? err.message,
        count: requestErrors,
      });
      scope.fail(err);
      return;
    }
    opts.logger.error(`${kind} of unknown origin: exiting so that a supervisor restarts berthd (containers keep running)`, {
      error: err.stack ?? err.message,
      exitCode: EXIT_UNCAUGHT,
    });
    exit(EXIT_UNCAUGHT);
  };
  const onException = handle('uncaught exception');
  const onRejection = handle('unhandled rejection');
  target.on('uncaughtException', onException);
  target.on('unhandledRejection', onRejection);
  return {
    get requestErrors() {
      return requestErrors;
    },
    uninstall() {
      target.off('uncaughtException', onException);
      target.off('unhandledRejection', onRejection);
    },
  };
}
