/**
 * Whether CRIU works on this host: `criu check`, run once, asynchronously (it can take seconds,
 * and a synchronous probe would stall every request of the daemon meanwhile). Until it has
 * answered, the answer is "no". Only runtimes whose checkpoint goes through the host's CRIU
 * (runc, crun, youki) need it — see checkpoint.ts; `reason` says why it is "no".
 */
import { execFile } from 'node:child_process';
import { findExecutable } from './registry.js';

const CHECK_TIMEOUT_MS = 10_000;

export class CriuProbe {
  private answer: boolean | undefined;
  private why: string | undefined;
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

  /** Why CRIU does not work (criu missing, or the last line `criu check` printed); undefined otherwise. */
  get reason(): string | undefined {
    return this.why;
  }

  private run(): Promise<boolean> {
    const criu = findExecutable('criu');
    if (!criu) {
      this.answer = false;
      this.why = 'criu is not installed (not found on PATH)';
      return Promise.resolve(false);
    }
    return new Promise((resolve) => {
      execFile(criu, ['check'], { timeout: CHECK_TIMEOUT_MS, killSignal: 'SIGKILL', signal: this.abort.signal }, (err, stdout, stderr) => {
        if (err) {
          // Its first complaint names the cause (e.g. "vdso: Unexpected rt vDSO area bounds").
          const said = `${stderr}\n${stdout}`.split('\n').map((l) => l.trim()).find(Boolean);
          this.why = `\`criu check\` fails: ${said ?? err.message}`;
          if (!this.abort.signal.aborted) this.warn(`criu is installed but ${this.why}: checkpoint/restore through CRIU disabled`);
        }
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
