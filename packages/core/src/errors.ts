/**
 * Typed errors, a closed set modelled on moby's errdefs. Each carries its kind and HTTP
 * status; classify with `errorKind(err)` (walks the cause chain), never with message text.
 */
export type ErrorKind =
  | 'InvalidParameter'
  | 'Unauthorized'
  | 'Forbidden'
  | 'NotFound'
  | 'Conflict'
  | 'NotModified'
  | 'NotImplemented'
  | 'Unavailable'
  | 'System';

export const ERROR_STATUS: Readonly<Record<ErrorKind, number>> = Object.freeze({
  InvalidParameter: 400,
  Unauthorized: 401,
  Forbidden: 403,
  NotFound: 404,
  Conflict: 409,
  NotModified: 304,
  NotImplemented: 501,
  Unavailable: 503,
  System: 500,
});

export abstract class BerthError extends Error {
  abstract readonly kind: ErrorKind;
  get status(): number {
    return ERROR_STATUS[this.kind];
  }
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

export class InvalidParameterError extends BerthError {
  readonly kind = 'InvalidParameter' as const;
}
export class UnauthorizedError extends BerthError {
  readonly kind = 'Unauthorized' as const;
}
export class ForbiddenError extends BerthError {
  readonly kind = 'Forbidden' as const;
}
export class NotFoundError extends BerthError {
  readonly kind = 'NotFound' as const;
}
export class ConflictError extends BerthError {
  readonly kind = 'Conflict' as const;
}
/** Not an error for the client: the API answers 304 (e.g. start of a running container). */
export class NotModifiedError extends BerthError {
  readonly kind = 'NotModified' as const;
}
export class NotImplementedError extends BerthError {
  readonly kind = 'NotImplemented' as const;
}
export class UnavailableError extends BerthError {
  readonly kind = 'Unavailable' as const;
}
export class SystemError extends BerthError {
  readonly kind = 'System' as const;
}

const KINDS = new Set<string>(Object.keys(ERROR_STATUS));

/** The kind of an error: the first `kind` found along the `cause` chain, else 'System'. */
export function errorKind(err: unknown): ErrorKind {
  let cur: unknown = err;
  for (let depth = 0; cur && depth < 16; depth++) {
    const k = (cur as { kind?: unknown }).kind;
    if (typeof k === 'string' && KINDS.has(k)) return k as ErrorKind;
    cur = (cur as { cause?: unknown }).cause;
  }
  return 'System';
}

export function httpStatus(err: unknown): number {
  return ERROR_STATUS[errorKind(err)];
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/**
 * A plugin's config is refused: thrown by a plugin's `validateConfig` naming the offending
 * key (dotted for nested keys), so the start-up error names the plugin and the key:
 * `plugin gpu failed in hook validateConfig: config key "devices": must be a list of strings`.
 */
export class PluginConfigError extends InvalidParameterError {
  readonly key: string;
  constructor(key: string, message: string) {
    super(`config key ${JSON.stringify(key)}: ${message}`);
    this.key = key;
  }
}

/**
 * A plugin's tap failed. Keeps the cause's kind (for errorKind() and the HTTP status), and
 * names the plugin and the hook, like rollup's PluginDriver does.
 */
export class PluginError extends BerthError {
  readonly plugin: string;
  readonly hook: string;
  constructor(plugin: string, hook: string, cause: unknown) {
    super(`plugin ${plugin} failed in hook ${hook}: ${errorMessage(cause)}`, { cause });
    this.plugin = plugin;
    this.hook = hook;
  }
  get kind(): ErrorKind {
    return errorKind(this.cause);
  }
}

/**
 * Thrown by a plugin's `register`/`apply` when the host lacks what it needs (no AppArmor,
 * no CRIU, …): the plugin is listed as skipped, the engine starts without it.
 */
export class SkipPluginError extends Error {
  readonly skipPlugin = true as const;
  constructor(reason: string) {
    super(reason);
    this.name = 'SkipPluginError';
  }
}

export function isSkipPluginError(err: unknown): err is SkipPluginError {
  return !!err && typeof err === 'object' && (err as { skipPlugin?: unknown }).skipPlugin === true;
}

/** A plugin graph that cannot load: duplicate name, missing requirement, cycle, bad definition. */
export class PluginGraphError extends BerthError {
  readonly kind = 'InvalidParameter' as const;
  constructor(
    message: string,
    readonly plugins: string[],
  ) {
    super(message);
  }
}

// Docker's common messages.
/** Docker's "No such container: x" (404). */
export function noSuchContainer(idOrName: string): NotFoundError {
  return new NotFoundError(`No such container: ${idOrName}`);
}
/** Docker's "Container x is not running" (409). */
export function notRunning(id: string): ConflictError {
  return new ConflictError(`Container ${id} is not running`);
}
