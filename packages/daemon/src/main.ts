/**
 * startBerthd(): import the build's plugins (built-ins, daemon.json `plugins`, a custom build's
 * own), lock the data root, build the engine, serve the API,
 * and shut down on SIGTERM/SIGINT (stop accepting, end streams, finish in-flight
 * requests, then stop the containers unless live restore is on).
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ConsoleLogger, Engine, errorMessage, type EngineOptions, type Logger, type Plugin } from '@berth/core';
import { IImageService } from '@berth/image-store';
import { nativeAddonStatus } from '@berth/native';
import { buildApp, type App } from './app.js';
import type { DaemonFacts } from './port.js';
import { buildPlugins } from './build-file.js';
import type { DaemonConfig } from './config.js';
import { ApiServer } from './daemon.js';
import { enginePort } from './engine-port.js';
import { initVersion, resolveInitPath } from './init.js';
import { apiRoutes } from './routes/index.js';

export interface RunningDaemon {
  readonly engine: Engine;
  readonly app: App;
  readonly server: ApiServer;
  /** Graceful shutdown; resolves when everything is released. Idempotent. */
  shutdown(reason?: string): Promise<void>;
}

export interface StartBerthdOptions {
  /** Extra plugins appended to the build's (the built-ins and daemon.json `plugins.load`): a custom build's own. */
  plugins?: Plugin[];
  logger?: Logger;
  /** Options of the engine's OCI spec builder (custom builds: e.g. the systemd cgroup driver, shown in /info). */
  spec?: EngineOptions['spec'];
  /** Install SIGTERM/SIGINT handlers (berthd does; tests embedding the daemon may not). */
  handleSignals?: boolean;
  /**
   * Make this process a child subreaper, so the real exit code of a container whose conmon
   * was killed is still known (runtime-oci's reaper.ts). berthd does; a process embedding the
   * daemon keeps its own reaping unless it asks (default false).
   */
  subreaper?: boolean;
}

function daemonId(dataRoot: string): string {
  const file = path.join(dataRoot, 'engine-id');
  if (existsSync(file)) {
    const id = readFileSync(file, 'utf8').trim();
    if (id) return id;
  }
  const id = randomUUID();
  mkdirSync(dataRoot, { recursive: true });
  writeFileSync(file, id + '\n', { mode: 0o600 });
  return id;
}

function cgroupVersion(): '1' | '2' {
  return existsSync('/sys/fs/cgroup/cgroup.controllers') ? '2' : '1';
}

export async function startBerthd(config: DaemonConfig, opts: StartBerthdOptions = {}): Promise<RunningDaemon> {
  const logger = opts.logger ?? new ConsoleLogger(config.logLevel === 'fatal' ? 'error' : config.logLevel);
  const server0 = { hosts: config.hosts, dataRoot: config.dataRoot, execRoot: config.execRoot, pidfile: config.pidfile, group: config.group, groupExplicit: config.groupExplicit, tls: config.tls, logger, connections: config.connections };
  ApiServer.validate(server0);
  // The build's plugins, imported before anything is touched: a missing package or a bad build file stops here.
  const plugins = await buildPlugins(config, { subreaper: opts.subreaper, extra: opts.plugins });
  // The lock first: a second daemon on this data root must not touch its state.
  const lockOnly = new ApiServer(buildApp({ routes: [] }), server0);
  lockOnly.acquire();
  // Said once, at start: why the daemon runs without its native addon (never silently).
  const native = nativeAddonStatus();
  if (native.fallback) logger.warn(`native addon not used: ${native.fallback}; mounts and helper processes go through the mount binaries and child_process`);
  // --init's binary, found once: mounted at /sbin/docker-init; its version goes to /info.
  const initPath = resolveInitPath(config.initPath);
  const spec: EngineOptions['spec'] = { ...opts.spec, ...(initPath ? { initPath } : {}), ...(config.init ? { defaultInit: true } : {}) };
  let engine: Engine | undefined;
  try {
    engine = await Engine.create({
      dataRoot: config.dataRoot,
      execRoot: config.execRoot,
      experimental: config.experimental,
      // The OCI runtime backend is a built-in plugin; the build file may swap it, a custom build's plugins may add backends.
      plugins,
      pluginConfig: config.build.config,
      // Another backend than runtime-oci: its own default runtime unless one was named.
      defaultRuntime: config.build.backend !== undefined && config.build.backend !== 'runtime-oci' && config.defaultRuntime === 'runc' ? undefined : config.defaultRuntime,
      // dockerd's NoPivotRoot: a root filesystem on a ramdisk, where pivot_root fails.
      noPivotRoot: !!process.env.DOCKER_RAMDISK,
      liveRestore: config.liveRestore,
      spec,
      logger,
    });
    // What the loaded plugins announced (PluginContext.addSecurityOption), plus the engine's own.
    const security = engine.securityOptions();
    if (cgroupVersion() === '2') security.push('name=cgroupns');
    const facts: DaemonFacts = {
      id: daemonId(config.dataRoot),
      dataRoot: config.dataRoot,
      execRoot: config.execRoot,
      experimental: config.experimental,
      liveRestore: config.liveRestore,
      defaultRuntime: engine.config.defaultRuntime,
      // Every runtime of every backend (a runtime without a binary shows its name as the path).
      runtimes: Object.fromEntries(engine.runtimes().map((r) => [r.name, { path: r.path ?? r.name, ...(r.runtimeArgs?.length ? { runtimeArgs: [...r.runtimeArgs] } : {}) }])),
      securityOptions: security,
      storageDriver: engine.container.isRegistered(IImageService, true) ? String(engine.container.resolve(IImageService).rootfs.driver) : config.rootfsDir ? 'vfs' : 'none',
      loggingDriver: 'json-file',
      cgroupDriver: engine.config.cgroupDriver,
      plugins: engine.plugins,
      cgroupVersion: cgroupVersion(),
      debug: config.debug,
      labels: config.labels,
      ...(initPath ? { initCommit: initVersion(initPath) ?? '' } : {}),
    };
    const port = enginePort(engine, { facts, ...(config.rootfsDir ? { rootfsDir: config.rootfsDir } : {}) });
    const app = buildApp({ routes: apiRoutes(port), experimental: config.experimental, logger });
    const server = new ApiServer(app, { ...server0, shutdownGraceMs: 15_000 });
    await server.listen();
    const eng = engine;

    let shutting: Promise<void> | null = null;
    const shutdown = (reason = 'shutdown') => {
      shutting ??= (async () => {
        logger.info('shutting down', { reason });
        await server.shutdown();
        if (config.liveRestore) logger.info('live restore: containers keep running');
        // Closes the plugins too: the OCI runtime plugin closes its backend (its exit watcher
        // would keep an embedding process alive).
        await eng.shutdown({ liveRestore: config.liveRestore, timeout: config.shutdownTimeout });
        lockOnly.release();
        logger.info('daemon shut down');
      })();
      return shutting;
    };
    if (opts.handleSignals) {
      let count = 0;
      const onSignal = (sig: NodeJS.Signals) => {
        count++;
        if (count > 2) {
          logger.error('forced exit after repeated signals');
          process.exit(1);
        }
        if (count === 1) {
          void shutdown(sig).then(
            () => process.exit(0),
            (err) => {
              logger.error('shutdown failed', { error: errorMessage(err) });
              process.exit(1);
            },
          );
        }
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
    }
    logger.info('daemon has completed initialization', { hosts: server.addresses.map((a) => a.host) });
    return { engine: eng, app, server, shutdown };
  } catch (err) {
    if (engine) await engine.close().catch(() => {});
    lockOnly.release();
    throw err;
  }
}
