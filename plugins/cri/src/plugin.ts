/**
 * The CRI plugin: serves Kubernetes' Container Runtime Interface (runtime.v1) on a unix
 * socket (config `socket`, default /run/berth/cri.sock), so a kubelet runs its pods on berth's
 * engine — the same containers, hooks and plugins as the Docker API. Off in berthd unless
 * daemon.json turns it on (`"plugins": {"builtins": {"cri": true}}`).
 *
 * Pods go on a CNI network (pod-network.ts: config `cniConfDir`, `cniBinDirs`, `podBridge`,
 * `podSubnet`); Exec/Attach/PortForward stream over WebSocket from streaming.ts (`streamingAddress`, https with `streamingTls`). Its taps: `specBuild` puts a pod's containers into the pod's namespaces (pods.ts), and
 * `beforeRemove` refuses a Docker-API removal of a ready pod's container without force.
 */
import { isAbsolute } from 'node:path';
import {
  ConflictError,
  IEngine,
  PluginConfigError,
  Stage,
  UnavailableError,
  definePlugin,
  type Engine,
  type EngineInfo,
  type OciSpec,
  type Plugin,
} from '@berth/core';
import { ImageServiceImpl } from './image-service.js';
import { LABEL, PodState, isCriContainer } from './mapping.js';
import { PodStore, hostNamespaces, type PodNamespaces } from './pods.js';
import { pidHolders, pidNamespacePath, type PidHolders } from './pid-holder.js';
import { cniPodNetwork, type PodNetwork, type PodNetworkConfig } from './pod-network.js';
import type { PortDialer } from './portforward.js';
import { RuntimeServiceImpl, type ProcessStats } from './runtime-service.js';
import { startCriServer, type CriServer } from './server.js';
import { splitHostPort, startStreamingServer, type StreamingServer } from './streaming.js';
import { streamingTlsOf, validateStreamingTls, type StreamingTlsConfig } from './streaming-tls.js';

export const CRI_PLUGIN_NAME = 'cri';
export const CRI_PLUGIN_TYPE = 'io.berth.cri.v1';
export const DEFAULT_CRI_SOCKET = '/run/berth/cri.sock';
export const CRI_VERSION = '0.1.0';

export interface CriPluginConfig extends PodNetworkConfig {
  /** The unix socket kubelet's --container-runtime-endpoint names. */
  socket: string;
  /** host:port of the Exec/Attach streaming server (default 127.0.0.1:0: loopback, any free port). */
  streamingAddress?: string;
  /** Serve the streaming URLs over https: `{ cert, key }` PEM files or `{ selfSigned: true }` (streaming-tls.ts); absent: plain http. */
  streamingTls?: StreamingTlsConfig;
}

const NS_OF = { network: 'net', ipc: 'ipc', uts: 'uts' } as const;

export interface CriPluginOptions extends Partial<CriPluginConfig> {
  /** How pods' namespaces are made (default: nsfs files on the host; tests without root pass a fake). */
  namespaces?: (execRoot: string) => PodNamespaces;
  /** How pods with a pod-wide PID namespace get its PID 1 (default: unshare + tini, pid-holder.ts; tests pass their own spawner). */
  pidHolders?: PidHolders;
  /** CPU/memory of a container's process for the stats calls (berthd passes its stats sampler); absent: stats carry no numbers. */
  stats?: ProcessStats;
  /** The pods' network (default: CNI per the config, pod-network.ts; tests without root pass a fake). */
  network?: (config: CriPluginConfig, dataRoot: string) => PodNetwork;
  /** How PortForward reaches a pod's port (default: the nsenter relay of portforward.ts; tests pass their own). */
  dialer?: PortDialer;
}

export function criPlugin(config: CriPluginOptions = {}): Plugin<CriPluginConfig> {
  const running = new WeakMap<EngineInfo, { server?: CriServer; streaming?: StreamingServer; pods: PodStore }>();
  return definePlugin<CriPluginConfig>({
    name: CRI_PLUGIN_NAME,
    type: CRI_PLUGIN_TYPE,
    version: CRI_VERSION,
    config: { socket: config.socket ?? DEFAULT_CRI_SOCKET, ...(config.streamingTls ? { streamingTls: config.streamingTls } : {}) },
    validateConfig(c) {
      if (typeof c.socket !== 'string' || !isAbsolute(c.socket)) throw new PluginConfigError('socket', 'must be an absolute path of a unix socket');
      if (c.streamingAddress !== undefined) {
        try {
          splitHostPort(String(c.streamingAddress));
        } catch {
          throw new PluginConfigError('streamingAddress', 'must be host:port (e.g. 127.0.0.1:0)');
        }
      }
      if (c.streamingTls !== undefined) validateStreamingTls(c.streamingTls);
      if (c.cniConfDir !== undefined && (typeof c.cniConfDir !== 'string' || !isAbsolute(c.cniConfDir))) throw new PluginConfigError('cniConfDir', 'must be an absolute path');
      if (c.cniBinDirs !== undefined && (!Array.isArray(c.cniBinDirs) || c.cniBinDirs.some((d) => typeof d !== 'string' || !isAbsolute(d)))) throw new PluginConfigError('cniBinDirs', 'must be a list of absolute paths');
      if (c.podBridge !== undefined && (typeof c.podBridge !== 'string' || !/^[A-Za-z0-9_.-]{1,15}$/.test(c.podBridge))) throw new PluginConfigError('podBridge', 'must be an interface name (at most 15 characters)');
      if (c.podSubnet !== undefined && (typeof c.podSubnet !== 'string' || !/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/.test(c.podSubnet))) throw new PluginConfigError('podSubnet', 'must be an IPv4 CIDR such as 10.88.0.0/16');
    },
    async apply(hooks, ctx) {
      const pods = new PodStore(ctx.engine.dataRoot, ctx.logger, (config.namespaces ?? hostNamespaces)(ctx.engine.execRoot), config.pidHolders ?? pidHolders());
      await pods.load();
      const state: { server?: CriServer; streaming?: StreamingServer; pods: PodStore } = { pods };
      running.set(ctx.engine, state);

      // A pod's container joins the namespaces the pod holds (network, IPC, UTS; PID when it shares the pod's).
      hooks.specBuild.tapPromise({ name: CRI_PLUGIN_NAME, stage: Stage.NORMAL }, async (spec: OciSpec, c) => {
        if (!isCriContainer(c.container)) return spec;
        const pod = pods.find(c.container.Config.Labels![LABEL.sandboxId]!);
        if (!pod) throw new ConflictError(`pod sandbox ${c.container.Config.Labels![LABEL.sandboxId]} of container ${c.container.ID} is gone`);
        let pidPath: string | undefined;
        if (c.container.Config.Labels![LABEL.pidNamespace] === 'pod') {
          // Checked now: a holder that exited leaves its PID to be recycled by another process.
          if (!pod.pidHolder || !(await pods.holderAlive(pod))) throw new ConflictError(`the PID namespace of pod sandbox ${pod.id} is gone (its holder process exited)`);
          pidPath = pidNamespacePath(pod.pidHolder);
        }
        const namespaces = (spec.linux?.namespaces ?? []).map((ns) => {
          const kind = NS_OF[ns.type as keyof typeof NS_OF];
          const path = ns.type === 'pid' ? pidPath : kind ? pod.nsPaths[kind] : undefined;
          return path ? { ...ns, path } : ns;
        });
        return { ...spec, linux: { ...spec.linux, namespaces } };
      });

      // Its output also goes to kubelet's log file, in the CRI log format (the backend's log pump writes it).
      hooks.runtimeCreate.tapPromise({ name: CRI_PLUGIN_NAME }, async (options, c) => {
        const logPath = isCriContainer(c.container) ? c.container.Config.Labels?.[LABEL.logPath] : undefined;
        if (logPath) options.log = { ...options.log, criPath: logPath };
        return undefined;
      });

      // `docker rm` (no force) of a container of a ready pod: refused, kubelet owns it.
      hooks.beforeRemove.tapPromise({ name: CRI_PLUGIN_NAME }, async (c) => {
        if (c.force || !isCriContainer(c.container)) return;
        const pod = pods.find(c.container.Config.Labels![LABEL.sandboxId]!);
        if (pod?.state === PodState.READY) {
          throw new ConflictError(`container ${c.container.ID} belongs to the ready pod ${pod.metadata.namespace}/${pod.metadata.name} (managed by kubelet over the CRI): use force to remove it`);
        }
      });

      const engine = (): Engine => {
        if (!ctx.container.isRegistered(IEngine, true)) throw new UnavailableError('berth is starting');
        return ctx.container.resolve(IEngine);
      };
      const images = new ImageServiceImpl(engine);
      const network = (config.network ?? cniPodNetwork)(ctx.config, ctx.engine.dataRoot);
      const streamingAddress = ctx.config.streamingAddress ?? '127.0.0.1:0';
      const tls = ctx.config.streamingTls ? await streamingTlsOf(ctx.config.streamingTls, splitHostPort(streamingAddress)[0]) : undefined;
      state.streaming = await startStreamingServer({ address: streamingAddress, engine, logger: ctx.logger, ...(config.dialer ? { dialer: config.dialer } : {}), ...(tls ? { tls } : {}) });
      const runtime = new RuntimeServiceImpl(engine, pods, images, CRI_VERSION, config.stats, network, state.streaming);
      state.server = await startCriServer({ socket: ctx.config.socket, runtime, images, logger: ctx.logger });
      ctx.logger.info('CRI server listening', { socket: ctx.config.socket });
    },
    async close(ctx) {
      await running.get(ctx.engine)?.server?.close();
      await running.get(ctx.engine)?.streaming?.close();
      running.delete(ctx.engine);
    },
  });
}
