/** The archive bad-input and bind-mount table and the symlink-swap race (helpers/) through the native addon's openat2 walk. */
import fs from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { dirFdOps } from '@berth/native';
import { archiveRace } from './helpers/archive-race.js';
import { archiveTable } from './helpers/archive-table.js';

const headers = fs.existsSync(path.resolve(path.dirname(process.execPath), '../include/node/node_api.h'));

it.skipIf(!headers)(`walks with the addon (Node headers present, so the build made it)${headers ? '' : " (skipped: no Node headers (node_api.h), so the build made no addon)"}`, () => {
  expect(dirFdOps().kind).toBe('openat2');
});

archiveTable('archive endpoints: hostile input and bind mounts (openat2)');
archiveRace('archive endpoints: a directory swapped for a host symlink during requests (openat2)');
