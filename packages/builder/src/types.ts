/** What the builder needs of the engine and the image service, and a build's options. */
import type { ContainerConfig, HostConfig, WaitResult } from '@berth/core';
import type { ImageService, JSONMessage } from '@berth/image-store';

/** The engine's containers as a build uses them (the daemon maps its ContainerPort to this). */
export interface BuildContainers {
  create(req: { config: ContainerConfig; hostConfig: HostConfig }): Promise<{ id: string }>;
  start(id: string): Promise<void>;
  /** The container's stdout and stderr until it exits (logs, followed). */
  output(id: string, signal: AbortSignal): AsyncIterable<Buffer>;
  wait(id: string, signal: AbortSignal): Promise<WaitResult>;
  remove(id: string): Promise<void>;
  /** The container's root filesystem for a while (COPY --from a stage). */
  mountRootfs(id: string): Promise<{ path: string; release(): Promise<void> }>;
}

export type BuildImages = Pick<ImageService, 'imageId' | 'getImage' | 'buildImage' | 'commit' | 'tag'>;

export interface BuildOptions {
  /** Path of the Dockerfile inside the context (default Dockerfile). */
  dockerfile?: string;
  /** `-t` names (repo[:tag]). */
  tags?: string[];
  /** `--build-arg`: a null value takes the variable from… nowhere (the CLI resolves it client-side). */
  buildArgs?: Record<string, string | null>;
  /** `--label`: set on the final image. */
  labels?: Record<string, string>;
  target?: string;
  noCache?: boolean;
  /** Remove intermediate containers after a successful step (default true). */
  rm?: boolean;
  /** Remove them after a failed step too. */
  forceRm?: boolean;
  /** `--memory`, `--cpu-*`, `--shm-size`, `--ulimit`, `--cgroup-parent`, `--add-host`: the RUN containers' HostConfig. */
  runHostConfig?: HostConfig;
  /** `--network`: NetworkMode of RUN containers. */
  networkMode?: string;
  /** `--platform`: only the host's platform is built. */
  platform?: string;
  /** `--pull`: refused (berth builds offline from local images). */
  pull?: boolean;
  emit: (m: JSONMessage) => void;
  signal: AbortSignal;
}
