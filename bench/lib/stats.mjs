// Small statistics helpers shared by the benchmark phases (nearest-rank quantiles; a Mann–Whitney
// U test and a bootstrap interval of a median difference, for before/after comparisons).

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

/** Standard normal CDF (erfc by Abramowitz–Stegun 7.1.26, |error| < 1.5e-7). */
export function normalCdf(z) {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const erfc = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))) * Math.exp(-x * x);
  return z >= 0 ? 1 - erfc / 2 : erfc / 2;
}

/**
 * Mann–Whitney U test of two independent samples, two-sided, by the normal approximation with
 * the tie correction and a continuity correction (scipy's `mannwhitneyu(method='asymptotic')`).
 * `u` is x's statistic (the number of pairs where x is larger, ties counting half); `p` the
 * two-sided p-value. Meaningful from ~8 values per sample.
 */
export function mannWhitney(x, y) {
  const n1 = x.length;
  const n2 = y.length;
  const all = [...x.map((v) => [v, 0]), ...y.map((v) => [v, 1])].sort((a, b) => a[0] - b[0]);
  let r1 = 0;
  let ties = 0;
  for (let i = 0; i < all.length; ) {
    let j = i;
    while (j < all.length && all[j][0] === all[i][0]) j++;
    const rank = (i + 1 + j) / 2; // mean of the ranks i+1..j
    for (let k = i; k < j; k++) if (all[k][1] === 0) r1 += rank;
    const t = j - i;
    ties += t * t * t - t;
    i = j;
  }
  const n = n1 + n2;
  const u = r1 - (n1 * (n1 + 1)) / 2;
  const mu = (n1 * n2) / 2;
  const sigma = Math.sqrt(((n1 * n2) / 12) * (n + 1 - ties / (n * (n - 1))));
  if (sigma === 0) return { u, z: 0, p: 1 };
  const z = (Math.max(0, Math.abs(u - mu) - 0.5) * Math.sign(u - mu)) / sigma;
  return { u, z, p: Math.min(1, 2 * (1 - normalCdf(Math.abs(z)))) };
}

/** A seeded uniform [0, 1) generator (mulberry32): the same seed gives the same bootstrap. */
export function seededRandom(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Percentile bootstrap confidence interval of median(a) − median(b). `paired`: a[i] and b[i]
 * were measured in the same round (interleaved benches), so rounds are resampled whole and a
 * load swing moves both sides of a resample together; otherwise each sample is resampled on its
 * own. Returns { diff (the observed difference), lo, hi, level, resamples }.
 */
export function bootstrapMedianDiff(a, b, { paired = false, resamples = 10_000, level = 0.95, seed = 1 } = {}) {
  if (paired && a.length !== b.length) throw new Error('bootstrapMedianDiff: paired samples of different lengths');
  const rnd = seededRandom(seed);
  const pick = (n) => Math.floor(rnd() * n);
  const diffs = new Float64Array(resamples);
  const ra = new Array(a.length);
  const rb = new Array(b.length);
  for (let r = 0; r < resamples; r++) {
    if (paired) {
      for (let i = 0; i < a.length; i++) {
        const k = pick(a.length);
        ra[i] = a[k];
        rb[i] = b[k];
      }
    } else {
      for (let i = 0; i < a.length; i++) ra[i] = a[pick(a.length)];
      for (let i = 0; i < b.length; i++) rb[i] = b[pick(b.length)];
    }
    diffs[r] = median(ra) - median(rb);
  }
  diffs.sort();
  const tail = (1 - level) / 2;
  const at = (p) => diffs[Math.min(resamples - 1, Math.max(0, Math.floor(p * resamples)))];
  return { diff: median(a) - median(b), lo: at(tail), hi: at(1 - tail), level, resamples };
}
