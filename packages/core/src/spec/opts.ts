import type { OciSpec } from '../oci.js';

/**
 * One change to a spec, containerd `SpecOpts` style — but pure: an opt never mutates the
 * spec it gets, it returns a new one (sharing the untouched parts). All I/O (rootfs
 * lookups, device stats, host probes) happens before, in `buildOciSpec`'s gather phase,
 * so every opt can be applied to an empty spec in a unit test.
 */
export type SpecOpt = (spec: OciSpec) => OciSpec;

/** Applies opts left to right. */
export function applyOpts(spec: OciSpec, opts: readonly SpecOpt[]): OciSpec {
  return opts.reduce((s, opt) => opt(s), spec);
}

/** One opt made of several, applied left to right. */
export function composeOpts(...opts: SpecOpt[]): SpecOpt {
  return (spec) => applyOpts(spec, opts);
}
