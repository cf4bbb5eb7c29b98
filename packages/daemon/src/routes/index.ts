/** All API routes of berthd, composed over an EnginePort. */
import type { EnginePort } from '../port.js';
import type { Route } from '../router.js';
import { berthRoutes } from './berth.js';
import { containerFileRoutes } from './container-files.js';
import { containerRoutes } from './containers.js';
import { systemDf } from './disk-usage.js';
import { execRoutes } from './exec.js';
import { imageRoutes } from './images.js';
import { systemRoutes } from './system.js';
import { checkpointRoutes } from './checkpoints.js';
import { networkRoutes } from './networks.js';
import { buildRoutes } from './build.js';
import { volumeRoutes } from './volumes.js';

export function apiRoutes(port: EnginePort): Route[] {
  // checkpoints before containers: DELETE /containers/{id:.*} (links) would take DELETE …/checkpoints/{name} (as in dockerd)
  return [...berthRoutes(port), ...systemRoutes(port), { method: 'GET', path: '/system/df', handler: systemDf(port) }, ...containerFileRoutes(port), ...checkpointRoutes(port), ...containerRoutes(port), ...execRoutes(port), ...networkRoutes(port), ...volumeRoutes(port), ...imageRoutes(() => port.imageService?.(), port.containers), ...buildRoutes(() => port.imageService?.(), port.containers)];
}
