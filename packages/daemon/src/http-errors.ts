/**
 * The one place where errors become HTTP answers: the status comes from `errorKind()`
 * (the kind along the cause chain), the body is Docker's `{"message": …}`.
 * NotModified → 304 with an empty body.
 */
import type { ServerResponse } from 'node:http';
import { ERROR_STATUS, errorKind, errorMessage } from '@berth/core';

/** HTTP-layer errors that have no engine kind (body too large, method not allowed). */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export function httpStatusOf(err: unknown): number {
  if (err instanceof HttpError) return err.statusCode;
  return ERROR_STATUS[errorKind(err)];
}

/** Write `err` as Docker's error answer. Safe to call on a response already started: it then only ends it. */
export function sendError(res: ServerResponse, err: unknown): void {
  if (res.headersSent) {
    if (!res.writableEnded) res.end();
    return;
  }
  const status = httpStatusOf(err);
  if (status === 304) {
    res.statusCode = 304;
    res.removeHeader('Content-Type');
    res.end();
    return;
  }
  const body = JSON.stringify({ message: errorMessage(err) }) + '\n';
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}
