/** All API routes of berthd, composed over a DaemonBackend. */
import type { DaemonBackend } from '../backend.js';
import type { Route } from '../router.js';
import { containerRoutes } from './containers.js';
import { systemDf } from './disk-usage.js';
import { execRoutes } from './exec.js';
import { imageRoutes } from './images.js';
import { systemRoutes } from './system.js';

export function apiRoutes(backend: DaemonBackend): Route[] {
  return [...systemRoutes(backend), { method: 'GET', path: '/system/df', handler: systemDf(backend) }, ...containerRoutes(backend), ...execRoutes(backend), ...imageRoutes(() => backend.imageService?.(), backend.containers)];
}
