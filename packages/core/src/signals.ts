/** Signal names and numbers (Linux), parsed like Docker: "KILL", "SIGKILL", "kill", "9". */
import { constants } from 'node:os';
import { InvalidParameterError } from './errors.js';

const SIGRTMIN = 34;
const SIGRTMAX = 64;

const BY_NAME: Map<string, number> = (() => {
  const m = new Map<string, number>();
  for (const [name, num] of Object.entries(constants.signals)) m.set(name.replace(/^SIG/, ''), num as number);
  m.set('RTMIN', SIGRTMIN);
  m.set('RTMAX', SIGRTMAX);
  for (let i = 1; i <= 15; i++) {
    m.set(`RTMIN+${i}`, SIGRTMIN + i);
    m.set(`RTMAX-${i}`, SIGRTMAX - i);
  }
  return m;
})();

/**
 * Parse a signal as Docker's CLI and daemon do: a positive number (1..64), or a name with or
 * without the SIG prefix, case-insensitive. Anything else → InvalidParameterError "Invalid signal: x".
 */
export function parseSignal(raw: string | number): number {
  if (typeof raw === 'number') {
    if (Number.isInteger(raw) && raw >= 1 && raw <= SIGRTMAX) return raw;
    throw new InvalidParameterError(`Invalid signal: ${raw}`);
  }
  const s = raw.trim();
  if (/^\d+$/.test(s)) {
    const n = Number(s);
    if (n >= 1 && n <= SIGRTMAX) return n;
    throw new InvalidParameterError(`Invalid signal: ${raw}`);
  }
  const num = BY_NAME.get(s.toUpperCase().replace(/^SIG/, ''));
  if (num === undefined) throw new InvalidParameterError(`Invalid signal: ${raw}`);
  return num;
}

export function signalName(num: number): string {
  for (const [name, n] of BY_NAME) if (n === num) return `SIG${name}`;
  return String(num);
}

export const SIGKILL = 9;
export const SIGTERM = 15;
