/** API versions berthd speaks: dockerd's minimum (1.24) up to the swagger it follows. */
export const API_VERSION = '1.56';
export const MIN_API_VERSION = '1.24';
/** The engine version berthd reports (Server header, /version). */
export const ENGINE_VERSION = '0.1.0';

/** Compare two "major.minor" API versions: <0, 0, >0. Non-numeric parts compare as 0. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map((x) => Number.parseInt(x, 10) || 0);
  const pb = b.split('.').map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

export function versionLessThan(v: string, than: string): boolean {
  return compareVersions(v, than) < 0;
}

