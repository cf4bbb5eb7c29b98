/** Container IDs (64 hex, like dockerd) and names (validation, generation). */
import { randomBytes } from 'node:crypto';
import { InvalidParameterError } from './errors.js';

/** 64 lowercase hex characters; never a short (12 char) form that parses as a number, as dockerd does. */
export function generateId(): string {
  for (;;) {
    const id = randomBytes(32).toString('hex');
    if (!/^\d+$/.test(id.slice(0, 12))) return id;
  }
}

export function isFullId(s: string): boolean {
  return /^[0-9a-f]{64}$/.test(s);
}

/** Docker's short ID: the first 12 hex characters of a container ID or an image ID/digest ("sha256:" dropped). */
export function shortId(id: string): string {
  return id.replace(/^sha256:/, '').slice(0, 12);
}

export const VALID_NAME = /^\/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

/** Validates a container name and returns it in Docker's stored form ("/name"). */
export function normaliseName(name: string): string {
  if (!VALID_NAME.test(name)) {
    throw new InvalidParameterError(`Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
  }
  return name.startsWith('/') ? name : `/${name}`;
}

// Our own word lists (adjective_noun, like dockerd's generated names).
const LEFT = [
  'amber', 'bold', 'brave', 'calm', 'clever', 'cosmic', 'crisp', 'eager', 'fancy', 'gentle',
  'happy', 'jolly', 'keen', 'lively', 'lucid', 'mellow', 'nimble', 'noble', 'patient', 'placid',
  'proud', 'quiet', 'rapid', 'serene', 'sharp', 'steady', 'sunny', 'swift', 'tidy', 'vivid',
  'wise', 'zen',
];
const RIGHT = [
  'anchor', 'barge', 'beacon', 'buoy', 'cabin', 'capstan', 'cove', 'dinghy', 'dock', 'ferry',
  'galley', 'harbor', 'helm', 'hull', 'jetty', 'keel', 'lagoon', 'lighthouse', 'mast', 'mooring',
  'pier', 'quay', 'rudder', 'schooner', 'sextant', 'skiff', 'sloop', 'tide', 'tugboat', 'wharf',
  'yacht', 'yawl',
];

/** A random "adjective_noun" name; `retry` > 0 appends a digit, as dockerd does after a collision. */
export function generateName(retry = 0): string {
  const b = randomBytes(2);
  const name = `${LEFT[b[0]! % LEFT.length]}_${RIGHT[b[1]! % RIGHT.length]}`;
  return retry > 0 ? `${name}${randomBytes(1)[0]! % 10}` : name;
}
