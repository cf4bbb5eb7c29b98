/**
 * Failpoints: named places in the code where a crash-consistency test can make the daemon die
 * (or fail) on purpose, as etcd's gofail does. Off unless the `BERTH_FAILPOINTS` environment
 * variable names them, so a production daemon pays one Set lookup per point.
 *
 *   BERTH_FAILPOINTS="create.afterRuntimeCreate=kill,image.load.afterLayer=error"
 *
 * Actions:
 *   kill    SIGKILL the whole process at that point (no cleanup runs, as in a power cut)
 *   error   throw a plain Error("failpoint NAME") from that point
 *   enospc  throw an Error with code ENOSPC, as a full disk would
 *
 * Every point is declared once with `declareFailpoint` (its name and where it sits), so tests and
 * docs/reliability.md can list them all; `failpoint(name)` on an undeclared name is a bug and
 * throws. The variable is read once, when this module loads.
 */

import { writeSync } from 'node:fs';

export type FailpointAction = 'kill' | 'error' | 'enospc';

const ACTIONS = new Set<FailpointAction>(['kill', 'error', 'enospc']);

const declared = new Map<string, string>();

function parse(raw: string | undefined): Map<string, FailpointAction> {
  const out = new Map<string, FailpointAction>();
  for (const part of (raw ?? '').split(',')) {
    const item = part.trim();
    if (!item) continue;
    const eq = item.indexOf('=');
    const name = eq < 0 ? item : item.slice(0, eq);
    const action = (eq < 0 ? 'kill' : item.slice(eq + 1)) as FailpointAction;
    if (!ACTIONS.has(action)) throw new Error(`BERTH_FAILPOINTS: unknown action '${action}' for ${name} (kill, error, enospc)`);
    out.set(name, action);
  }
  return out;
}

let active = parse(process.env['BERTH_FAILPOINTS']);

/** Declares a failpoint (name → a sentence saying where it sits). Returns the name. */
export function declareFailpoint(name: string, where: string): string {
  declared.set(name, where);
  return name;
}

/** Every declared failpoint, name → where it sits. */
export function listFailpoints(): ReadonlyMap<string, string> {
  return declared;
}

/** Tests only: replaces the active set (as if BERTH_FAILPOINTS had been this string). */
export function setFailpointsForTest(raw: string | undefined): void {
  active = parse(raw);
}

/**
 * Whether this failpoint is turned on: for code that runs work in one piece where no point is
 * on, and splits it where the point sits when it is (the create's record directory and files).
 */
export function failpointArmed(name: string): boolean {
  return active.size !== 0 && active.has(name);
}

/** Acts if this failpoint is turned on; nothing otherwise. */
export function failpoint(name: string): void {
  if (active.size === 0) return;
  const action = active.get(name);
  if (!action) return;
  if (!declared.has(name)) throw new Error(`failpoint ${name} is not declared`);
  // Said before acting (synchronously, so it reaches stderr before a SIGKILL): tests check that
  // the point they meant was the one hit.
  writeSync(2, `failpoint ${name}: ${action}\n`);
  switch (action) {
    case 'kill':
      process.kill(process.pid, 'SIGKILL');
      // SIGKILL to ourselves is delivered at once; never reached.
      throw new Error(`failpoint ${name}: SIGKILL did not end the process`);
    case 'error':
      throw new Error(`failpoint ${name}`);
    case 'enospc': {
      const err = new Error(`ENOSPC: no space left on device (failpoint ${name})`) as NodeJS.ErrnoException;
      err.code = 'ENOSPC';
      err.errno = -28;
      throw err;
    }
  }
}
