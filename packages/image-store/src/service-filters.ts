/** The image filters that ImageService's list and the delete half's prune share (dockerd's). */
import { InvalidParameterError, filterValues, type DockerFilters } from '@berth/core';
import type { ImageConfig } from './types.js';

export function boolFilter(f: DockerFilters, key: string): boolean | undefined {
  const v = filterValues(f, key);
  if (v.length === 0) return undefined;
  const vals = new Set(v.map((x) => x.toLowerCase()));
  if ([...vals].some((x) => !['true', 'false', '1', '0'].includes(x))) throw new InvalidParameterError(`invalid filter '${key}=${v[0]}'`);
  return vals.has('true') || vals.has('1');
}

export function createdSeconds(c: ImageConfig): number {
  const t = c.created ? Date.parse(c.created) : NaN;
  return Number.isNaN(t) ? 0 : Math.floor(t / 1000);
}

