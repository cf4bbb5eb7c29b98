/**
 * The one logger interface of every berth package (token `ILogger`; the daemon's HTTP layer
 * takes the same). Structured: a message plus fields. ConsoleLogger (JSON lines on stderr),
 * MemoryLogger (tests, `berth explain`) and silentLogger implement it.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(bindings: Record<string, unknown>): Logger;
}

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** The level methods of every logger here; subclasses say where an entry goes. */
abstract class LevelLogger implements Logger {
  protected abstract log(level: LogLevel, msg: string, fields?: Record<string, unknown>): void;
  abstract child(bindings: Record<string, unknown>): Logger;
  debug(msg: string, fields?: Record<string, unknown>): void {
    this.log('debug', msg, fields);
  }
  info(msg: string, fields?: Record<string, unknown>): void {
    this.log('info', msg, fields);
  }
  warn(msg: string, fields?: Record<string, unknown>): void {
    this.log('warn', msg, fields);
  }
  error(msg: string, fields?: Record<string, unknown>): void {
    this.log('error', msg, fields);
  }
}

/** One JSON line per entry on stderr, from `level` up. */
export class ConsoleLogger extends LevelLogger {
  constructor(
    private readonly level: LogLevel = 'info',
    private readonly bindings: Record<string, unknown> = {},
    private readonly write: (line: string) => void = (line) => process.stderr.write(line + '\n'),
  ) {
    super();
  }
  protected log(level: LogLevel, msg: string, fields?: Record<string, unknown>): void {
    if (ORDER[level] < ORDER[this.level]) return;
    const entry: Record<string, unknown> = { time: new Date().toISOString(), level, msg, ...this.bindings };
    if (fields) {
      for (const [k, v] of Object.entries(fields)) entry[k] = v instanceof Error ? { message: v.message, name: v.name } : v;
    }
    this.write(JSON.stringify(entry));
  }
  child(bindings: Record<string, unknown>): Logger {
    return new ConsoleLogger(this.level, { ...this.bindings, ...bindings }, this.write);
  }
}

export interface LoggerEntry {
  level: LogLevel;
  msg: string;
  fields: Record<string, unknown>;
}

/** Keeps entries in memory (tests, `berth explain`). */
export class MemoryLogger extends LevelLogger {
  constructor(
    readonly entries: LoggerEntry[] = [],
    private readonly bindings: Record<string, unknown> = {},
  ) {
    super();
  }
  protected log(level: LogLevel, msg: string, fields?: Record<string, unknown>): void {
    this.entries.push({ level, msg, fields: { ...this.bindings, ...fields } });
  }
  child(bindings: Record<string, unknown>): Logger {
    return new MemoryLogger(this.entries, { ...this.bindings, ...bindings });
  }
}

/** Drops every entry (an embedder that wants no logs; the daemon's default without one). */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child: () => silentLogger,
};
