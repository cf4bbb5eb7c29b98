// Small statistics helpers shared by the benchmark phases (nearest-rank quantiles).

/** Quantile p (0..1) of xs by nearest rank on the sorted sample; NaN for an empty sample. */
export function quantile(xs, p) {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const rank = Math.ceil(p * s.length);
  return s[Math.min(s.length - 1, Math.max(0, rank - 1))];
}

export const median = (xs) => quantile(xs, 0.5);

export function summary(xs) {
  return { n: xs.length, min: Math.min(...xs), median: quantile(xs, 0.5), p90: quantile(xs, 0.9), p99: quantile(xs, 0.99), max: Math.max(...xs) };
}

/** Milliseconds between two process.hrtime.bigint() readings. */
export const ms = (a, b) => Number(b - a) / 1e6;
export const now = () => process.hrtime.bigint();

export function fmtMs(v) {
  if (!Number.isFinite(v)) return 'n/a';
  if (v >= 10_000) return `${(v / 1000).toFixed(1)} s`;
  if (v >= 1000) return `${(v / 1000).toFixed(2)} s`;
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ms`;
}

export function fmtMiB(bytes) {
  return Number.isFinite(bytes) ? `${(bytes / 1048576).toFixed(1)} MiB` : 'n/a';
}
