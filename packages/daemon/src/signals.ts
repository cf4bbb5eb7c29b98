/** Signal validation at the API edge (Docker's rules): a number 1..64 or a name with or without SIG. */
import { constants } from 'node:os';
import { InvalidParameterError } from '@berth/core';

const NAMES = new Set(Object.keys(constants.signals).map((n) => n.replace(/^SIG/, '')));

export function checkSignal(raw: string): string {
  const s = raw.trim();
  if (/^\d+$/.test(s)) {
    const n = Number(s);
    if (n >= 1 && n <= 64) return s;
    throw new InvalidParameterError(`Invalid signal: ${raw}`);
  }
  const name = s.toUpperCase().replace(/^SIG/, '');
  if (NAMES.has(name) || /^RTM(IN|AX)([+-]\d{1,2})?$/.test(name)) return s;
  throw new InvalidParameterError(`Invalid signal: ${raw}`);
}
