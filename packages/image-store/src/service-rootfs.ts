/**
 * ImageService's container root filesystem half beyond the one-line delegations to
 * RootfsManager: GET /containers/{id}/changes. Package-internal: ImageService is the one
 * entry (src/service.ts).
 */
import { promises as fsp } from 'node:fs';
import { NotFoundError } from '@berth/core';
import type { LocalImageStore } from './images.js';
import type { RootfsManager } from './rootfs.js';

/**
 * GET /containers/{id}/changes: what the container changed against its image
 * (Kind 0 = modified, 1 = added, 2 = deleted), parents of changes included, as dockerd lists them.
 */
export async function containerChanges(store: LocalImageStore, rootfs: RootfsManager, containerId: string): Promise<Array<{ Path: string; Kind: 0 | 1 | 2 }>> {
  const meta = await rootfs.meta(containerId);
  if (!meta) throw new NotFoundError(`no root filesystem prepared for container ${containerId}`);
  const chain = meta.topLayer ? await store.layers.chain(meta.topLayer) : [];
  const inImage = async (rel: string): Promise<boolean> => {
    for (const layer of [...chain].reverse()) {
      if (layer.whiteouts.some((w) => rel === w || rel.startsWith(`${w}/`))) return false;
      try {
        const st = await fsp.lstat(`${store.layers.diffDir(layer.chainId)}/${rel}`);
        return !(st.isCharacterDevice() && st.rdev === 0);
      } catch {
        // not in this layer
      }
      if (layer.opaqueDirs.some((o) => o !== '' && rel.startsWith(`${o}/`))) return false;
    }
    return false;
  };
  const tar = (await import('tar-stream')).default;
  const ex = tar.extract();
  const names: string[] = [];
  const done = (async () => {
    for await (const e of ex) {
      names.push(e.header.name.replace(/\/$/, ''));
      e.resume();
    }
  })();
  (await rootfs.diff(containerId)).pipe(ex as unknown as NodeJS.WritableStream);
  await done;
  const out: Array<{ Path: string; Kind: 0 | 1 | 2 }> = [];
  for (const n of names) {
    const base = n.slice(n.lastIndexOf('/') + 1);
    const dir = n.includes('/') ? n.slice(0, n.lastIndexOf('/')) : '';
    if (base === '.wh..wh..opq') continue;
    if (base.startsWith('.wh.')) {
      out.push({ Path: `/${dir ? `${dir}/` : ''}${base.slice(4)}`, Kind: 2 });
      continue;
    }
    out.push({ Path: `/${n}`, Kind: (await inImage(n)) ? 0 : 1 });
  }
  return out.sort((a, b) => a.Path.localeCompare(b.Path));
}
