/**
 * @berth/cli: the executables. `berthd` (bin/berthd) is berthdMain() of @berth/daemon, where
 * its flag parser lives too; `berth` (bin/berth) is main() of berth.ts: `berth plugins`,
 * `berth explain`, `berth build` (buildDaemon() of build.ts), over the daemon's /berth/v1 API.
 */
export { main as berthMain, type CliIo } from './berth.js';
export { buildDaemon, type BuildOptions, type BuildResult } from './build.js';
export { CliError, daemonHost, getJson, parseHost, type Endpoint } from './client.js';
export { explainTree, pluginTable } from './format.js';
