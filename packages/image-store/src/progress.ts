/** Docker's JSON progress stream messages (pkg/jsonmessage), as the docker CLI renders them. */

export interface ProgressDetail {
  current?: number;
  total?: number;
}

export interface JSONMessage {
  status?: string;
  id?: string;
  progress?: string;
  progressDetail?: ProgressDetail;
  stream?: string;
  error?: string;
  errorDetail?: { message: string; code?: number };
  aux?: unknown;
}

export type ProgressFn = (msg: JSONMessage) => void;

export const noProgress: ProgressFn = () => undefined;

function human(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(i === 1 ? 3 : 2).replace(/\.?0+$/, '')}${units[i]}`;
}

/** The text bar Docker puts in `progress` (the CLI redraws from progressDetail anyway). */
export function progressBar(current: number, total: number): string {
  if (total <= 0) return human(current);
  const width = 50;
  const filled = Math.min(width, Math.floor((current / total) * width));
  const bar = '='.repeat(Math.max(0, filled - 1)) + (filled > 0 ? (filled < width ? '>' : '=') : '') + ' '.repeat(width - filled);
  return `[${bar}] ${human(current)}/${human(total)}`;
}

/** Emits byte progress for one id, throttled to one message per `intervalMs` (and always the last). */
export function byteProgress(emit: ProgressFn, id: string, status: string, total: number, intervalMs = 100): (n: number) => void {
  let current = 0;
  let last = 0;
  return (n: number) => {
    current += n;
    const now = Date.now();
    if (now - last >= intervalMs || (total > 0 && current >= total)) {
      last = now;
      emit({ status, progressDetail: { current, ...(total > 0 ? { total } : {}) }, progress: progressBar(current, total), id });
    }
  };
}

/** Formats an error as the last message of a stream. */
export function errorMessageOf(err: unknown): JSONMessage {
  const message = err instanceof Error ? err.message : String(err);
  return { errorDetail: { message }, error: message };
}
