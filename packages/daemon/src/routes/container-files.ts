/**
 * The container filesystem routes (`docker cp`, export, diff) over the daemon's port: each runs
 * on the container's root filesystem, mounted for the request when the container does not run;
 * docker cp also on its volumes, mounted through their drivers for the request (as dockerd's).
 */
import { ConflictError, InvalidParameterError, ownerToContainer, ownerToHost, type ContainerRecord } from '@berth/core';
import { encodeStat, extractInto, rootMounts, statPath, tarPath, type RootMount } from '../archive.js';
import { boolValue, sendEmpty, sendJson } from '../http.js';
import type { ContainerPort, EnginePort, RootfsLease } from '../port.js';
import { sendStream } from '../request-streams.js';
import type { RequestContext, Route } from '../router.js';
import { need } from './containers.js';

export function containerFileRoutes(port: EnginePort): Route[] {
  const cs: ContainerPort = port.containers;

  /**
   * Runs `fn` on the container's root filesystem, mounted for the request when the container
   * does not run (dockerd's Mount … defer Unmount around archive and export), with `mounts`
   * its binds and volumes as the request sees them (`volumes`: docker cp mounts the volumes
   * through their drivers for the request, dockerd's openContainerFS; export has none); all is
   * given back when `fn` ends, fails or the client went away (sendStream resolves on abort).
   */
  const withRoot = async <T>(
    id: string,
    volumes: boolean,
    fn: (c: ContainerRecord, root: string, release: () => Promise<void>, mounts: RootMount[]) => Promise<T>,
  ): Promise<T> => {
    const c = await cs.inspect(id);
    let lease: RootfsLease;
    if (cs.mountRootfs) lease = await cs.mountRootfs(c.ID, { volumes });
    else if (c.BaseFS) lease = { path: c.BaseFS, release: async () => undefined };
    else throw new ConflictError(`container ${c.ID} has no root filesystem`);
    let released: Promise<void> | null = null;
    const release = () => (released ??= lease.release());
    let out: T;
    try {
      out = await fn(c, lease.path, release, volumes ? rootMounts(c.Mounts, lease.volumes) : []);
    } catch (err) {
      // the request's own error is the answer; a failed unmount after it is the store's to log
      await release().catch(() => undefined);
      throw err;
    }
    await release();
    return out;
  };

  /**
   * A remapped container's host owners → its own, for docker cp out and export. IDs outside the
   * mapping stay as they are (dockerd refuses them): a stopped container's rootfs, mounted here
   * without the userns plugin's idmapped layers, shows the image's files in container IDs already.
   */
  const fromRemapped = (c: ContainerRecord) => ownerToContainer(c.IdMappings, 'keep');

  const archiveStat = async (ctx: RequestContext, c: ContainerRecord, root: string, mounts: RootMount[]) => {
    // a missing path names the container as the request did (dockerd's containerFileNotFound{path, name})
    const { stat } = await statPath(root, ctx.query.get('path') ?? '', ctx.params.id, mounts);
    ctx.res.setHeader('X-Docker-Container-Path-Stat', encodeStat(stat));
    return { stat };
  };

  const archivePath = (ctx: RequestContext): string => {
    const p = ctx.query.get('path') ?? '';
    if (!p) throw new InvalidParameterError('Path cannot be empty');
    return p;
  };

  const archiveHead = async (ctx: RequestContext) => {
    archivePath(ctx);
    await withRoot(ctx.params.id, true, (c, root, _release, mounts) => archiveStat(ctx, c, root, mounts));
    ctx.res.statusCode = 200;
    ctx.res.setHeader('Content-Type', 'application/x-tar');
    ctx.res.end();
  };

  const archiveGet = async (ctx: RequestContext) => {
    archivePath(ctx);
    await withRoot(ctx.params.id, true, async (c, root, release, mounts) => {
      const { stat } = await archiveStat(ctx, c, root, mounts);
      const name = stat.name === '/' ? '' : stat.name;
      await sendStream(ctx, tarPath(root, ctx.query.get('path') ?? '', name, ctx.signal, mounts, fromRemapped(c)), { name: 'archive tar', contentType: 'application/x-tar', beforeEnd: release });
    });
  };

  const archivePut = async (ctx: RequestContext) => {
    const p = archivePath(ctx);
    // a read-only rootfs or bind is refused once the extraction point is resolved (as dockerd does)
    await withRoot(ctx.params.id, true, (c, root, _release, mounts) =>
      extractInto(root, p, ctx.body, {
        noOverwriteDirNonDir: boolValue(ctx.query, 'noOverwriteDirNonDir'),
        copyUIDGID: boolValue(ctx.query, 'copyUIDGID'),
        readonlyRootfs: c.HostConfig.ReadonlyRootfs === true,
        mounts,
        owner: ownerToHost(c.IdMappings),
      }),
    );
    sendEmpty(ctx.res, 200);
  };

  const exportRoot = async (ctx: RequestContext) => {
    await withRoot(ctx.params.id, false, async (c, root, release) => {
      await sendStream(ctx, tarPath(root, '/', '', ctx.signal, [], fromRemapped(c)), { name: 'export tar', contentType: 'application/octet-stream', beforeEnd: release });
    });
  };

  const changes = async (ctx: RequestContext) => {
    const c = await cs.inspect(ctx.params.id);
    const fn = need(cs.changes, 'changes');
    sendJson(ctx.res, 200, await fn.call(cs, c.ID));
  };

  return [
    { method: 'GET', path: '/containers/{id}/archive', handler: archiveGet },
    { method: 'HEAD', path: '/containers/{id}/archive', handler: archiveHead },
    { method: 'PUT', path: '/containers/{id}/archive', handler: archivePut },
    { method: 'GET', path: '/containers/{id}/export', handler: exportRoot },
    { method: 'GET', path: '/containers/{id}/changes', handler: changes },
  ];
}
