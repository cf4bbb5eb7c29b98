/**
 * Why the addon's tests cannot run here, for every test file of the package: native/build.mjs
 * builds the addon only where Node's headers are (include/node/node_api.h beside the node
 * binary), so without them there is no addon to test (the fallbacks are tested either way).
 * null when the headers are there.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';

export const noAddon: string | null = existsSync(path.resolve(path.dirname(process.execPath), '../include/node/node_api.h'))
  ? null
  : "no Node headers (include/node/node_api.h beside node), so the build made no addon";
