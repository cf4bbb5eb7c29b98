/**
 * Owner IDs in tar headers beyond ustar's numeric fields. tar-stream writes uid/gid as 6
 * octal digits and saturates at 0o777777 (262143), so a larger ID would silently become
 * 262143; and on reading it applies a pax header's path and size but not its uid/gid. These
 * two helpers keep large IDs exact both ways: `withExactIds` moves them into a pax header (as
 * Go's archive/tar and GNU tar write them, so docker and tar read them back), `idsOf` reads
 * pax `uid`/`gid` first (base-256 numeric fields are decoded by tar-stream already).
 */

/** The largest ID tar-stream's 6-digit octal field holds. */
export const TAR_OCTAL_ID_MAX = 0o777777;

interface IdHeader {
  uid?: number;
  gid?: number;
  /** pax records (tar-stream types them loosely): string values by key. */
  pax?: unknown;
}

const paxOf = (h: IdHeader): Record<string, unknown> => (h.pax && typeof h.pax === 'object' ? (h.pax as Record<string, unknown>) : {});

/** The header to write: IDs above TAR_OCTAL_ID_MAX also go into its pax records. */
export function withExactIds<H extends IdHeader>(h: H): H {
  const big: Record<string, string> = {};
  if ((h.uid ?? 0) > TAR_OCTAL_ID_MAX) big.uid = String(h.uid);
  if ((h.gid ?? 0) > TAR_OCTAL_ID_MAX) big.gid = String(h.gid);
  if (Object.keys(big).length === 0) return h;
  return { ...h, pax: { ...paxOf(h), ...big } };
}

/** The owner a read header carries: pax uid/gid when present, else the numeric fields. */
export function idsOf(h: IdHeader): { uid: number; gid: number } {
  const pax = (key: 'uid' | 'gid'): number | undefined => {
    const v = paxOf(h)[key];
    return typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : undefined;
  };
  return { uid: pax('uid') ?? h.uid ?? 0, gid: pax('gid') ?? h.gid ?? 0 };
}
