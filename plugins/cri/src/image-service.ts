/**
 * CRI ImageService on berth's image store (the image-store plugin's ImageService, token
 * IImageService): list, status, pull (with registry auth), remove, filesystem usage. Images are
 * the same ones `docker images` lists.
 */
import { statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { NotFoundError, UnavailableError, errorKind, type Engine } from '@berth/core';
import { IImageService, type ImageInspect, type ImageService } from '@berth/image-store';
import type { Msg } from './mapping.js';

export class ImageServiceImpl {
  constructor(private readonly engine: () => Engine) {}

  private store(): ImageService {
    const c = this.engine().container;
    if (!c.isRegistered(IImageService, true)) throw new UnavailableError('this berth build has no image store (the image-store plugin)');
    return c.resolve(IImageService);
  }

  private imageOf(i: ImageInspect): Msg {
    const user = i.Config.User ?? '';
    const uid = /^\d+/.exec(user);
    return {
      id: i.Id,
      repo_tags: i.RepoTags,
      repo_digests: i.RepoDigests,
      size: String(i.Size),
      ...(uid ? { uid: { value: uid[0] } } : user ? { username: user.split(':')[0] } : {}),
      spec: { image: i.Id },
      pinned: false,
    };
  }

  /** The image a container is created from: its reference as given, refused when the store lacks it (kubelet pulls first). */
  async resolveForCreate(ref: string): Promise<string> {
    if (!ref) throw new NotFoundError('container config has no image');
    const found = await this.store().resolve(ref);
    if (!found) throw new NotFoundError(`image ${ref} not found; pull it first`);
    return found.id;
  }

  async ListImages(req: Msg): Promise<Msg> {
    const want: string | undefined = req.filter?.image?.image || undefined;
    const s = this.store();
    const images: Msg[] = [];
    for (const sum of await s.list()) {
      const i = await s.inspect(sum.Id);
      if (want && !(i.Id === want || i.RepoTags.includes(want) || i.RepoDigests.includes(want))) continue;
      images.push(this.imageOf(i));
    }
    return { images };
  }

  async ImageStatus(req: Msg): Promise<Msg> {
    const ref: string = req.image?.image ?? '';
    try {
      const i = await this.store().inspect(ref);
      return { image: this.imageOf(i), info: req.verbose ? { info: JSON.stringify({ config: i.Config, os: i.Os, architecture: i.Architecture }) } : {} };
    } catch (err) {
      // An image the store does not have is answered with no image, not an error (as containerd's CRI).
      if (errorKind(err) === 'NotFound') return { info: {} };
      throw err;
    }
  }

  async PullImage(req: Msg): Promise<Msg> {
    const ref: string = req.image?.image ?? '';
    const a: Msg | undefined = req.auth;
    const auth = a && (a.username || a.auth || a.identity_token || a.registry_token)
      ? {
          ...(a.username ? { username: a.username, password: a.password ?? '' } : {}),
          ...(a.auth ? { auth: a.auth } : {}),
          ...(a.server_address ? { serveraddress: a.server_address } : {}),
          ...(a.identity_token ? { identitytoken: a.identity_token } : {}),
          ...(a.registry_token ? { registrytoken: a.registry_token } : {}),
        }
      : null;
    const id = await this.store().pull(ref, { auth });
    return { image_ref: id };
  }

  async RemoveImage(req: Msg): Promise<Msg> {
    const ref: string = req.image?.image ?? '';
    try {
      await this.store().remove(ref, { force: true });
    } catch (err) {
      if (errorKind(err) !== 'NotFound') throw err; // removing an absent image succeeds
    }
    return {};
  }

  async ImageFsInfo(): Promise<Msg> {
    const root = this.engine().config.dataRoot;
    const usage = async (dir: string): Promise<Msg> => {
      const st = await statfs(dir).catch(() => undefined);
      return {
        timestamp: (BigInt(Date.now()) * 1_000_000n).toString(),
        fs_id: { mountpoint: dir },
        used_bytes: { value: st ? String((st.blocks - st.bfree) * st.bsize) : '0' },
        inodes_used: { value: st ? String(st.files - st.ffree) : '0' },
      };
    };
    return { image_filesystems: [await usage(join(root, 'image'))], container_filesystems: [await usage(root)] };
  }
}
