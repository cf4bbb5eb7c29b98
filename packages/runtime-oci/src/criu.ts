/**
 * Whether checkpoint/restore works on this host: `criu check`, run once, asynchronously (it can
 * take seconds, and a synchronous probe would stall every request of the daemon meanwhile).
 * Until it has answered, the answer is "no".
 */
import { execFile } from 'node:child_process';
import { findExecutable } from './registry.js';

const CHECK_TIMEOUT_MS = 10_000;

export class CriuProbe {
  private answer: boolean | undefined;
  private running: Promise<boolean> | undefined;
  private readonly abort = new AbortController();

  constructor(private readonly warn: (msg: string) => void) {}

  /** Starts the probe (once) and resolves with its answer. */
  works(): Promise<boolean> {
    this.running ??= this.run();
    return this.running;
  }

  /** The answer, if the probe has given it; undefined while it runs or before it started. */
  get known(): boolean | undefined {
    return this.answer;
  }

  private run(): Promise<boolean> {
    const criu = findExecutable('criu');
    if (!criu) {
      this.answer = false;
      return Promise.resolve(false);
    }
    return new Promise((resolve) => {
      execFile(criu, ['check'], { timeout: CHECK_TIMEOUT_MS, killSignal: 'SIGKILL', signal: this.abort.signal }, (err) => {
        if (err && !this.abort.signal.aborted) this.warn('criu is installed but `criu check` fails: checkpoint/restore disabled');
        this.answer = !err;
        resolve(this.answer);
      });
    });
  }

  /** Stop a probe still running (the backend closes). */
  close(): void {
    this.abort.abort();
  }
}
