/**
 * How an image's config feeds a container, as dockerd does at create (moby daemon/commit.go
 * `merge`): the container's settings win; Env is merged by key (container's first, then the
 * image's that it does not override); Cmd comes from the image only when the container sets
 * neither Cmd nor Entrypoint; Entrypoint from the image only when the container's is unset
 * (an explicit empty Entrypoint, `--entrypoint ""`, clears it); Healthcheck fields are filled
 * from the image; ExposedPorts, Volumes and Labels are unions.
 */
import { mergeImageConfigIntoContainer, type ContainerConfig } from '@berth/core';
import type { ImageConfig, ImageRuntimeConfig } from './types.js';

/** Pure: returns the container's Config with the image's defaults filled in (core's merge). */
export function mergeImageConfig(imageConfig: ImageConfig | ImageRuntimeConfig | null | undefined, containerConfig: ContainerConfig): ContainerConfig {
  const img: ImageRuntimeConfig | undefined =
    imageConfig && 'rootfs' in imageConfig ? (imageConfig as ImageConfig).config : (imageConfig as ImageRuntimeConfig | null | undefined) ?? undefined;
  return mergeImageConfigIntoContainer(containerConfig, img as ContainerConfig | undefined);
}

/** The image's runtime config as a ContainerConfig (what `docker image inspect` shows as Config). */
export function imageContainerConfig(config: ImageConfig): ContainerConfig {
  const c = config.config ?? {};
  const out: ContainerConfig = {};
  const keys = ['User', 'ExposedPorts', 'Env', 'Entrypoint', 'Cmd', 'Volumes', 'WorkingDir', 'Labels', 'StopSignal', 'ArgsEscaped', 'Healthcheck', 'OnBuild', 'Shell', 'StopTimeout'] as const;
  for (const k of keys) if (c[k] !== undefined) (out as Record<string, unknown>)[k] = c[k];
  return out;
}
