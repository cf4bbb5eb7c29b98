/**
 * How an image's config feeds a container, as dockerd does at create (moby daemon/commit.go
 * `merge`): the container's settings win; Env is merged by key (container's first, then the
 * image's that it does not override); Cmd comes from the image only when the container sets
 * neither Cmd nor Entrypoint; Entrypoint from the image only when the container's is unset
 * (an explicit empty Entrypoint, `--entrypoint ""`, clears it); Healthcheck fields are filled
 * from the image; ExposedPorts, Volumes and Labels are unions.
 */
import type { ContainerConfig, HealthConfig } from '@berth/core';
import type { ImageConfig, ImageRuntimeConfig } from './types.js';

const envKey = (e: string): string => {
  const i = e.indexOf('=');
  return i === -1 ? e : e.slice(0, i);
};

function mergeHealth(user: HealthConfig | null | undefined, image: HealthConfig | null | undefined): HealthConfig | null | undefined {
  if (!image) return user;
  if (!user) return { ...image };
  const out: HealthConfig = { ...user };
  if (!out.Test || out.Test.length === 0) out.Test = image.Test ?? out.Test;
  if (!out.Interval) out.Interval = image.Interval ?? out.Interval;
  if (!out.Timeout) out.Timeout = image.Timeout ?? out.Timeout;
  if (!out.StartPeriod) out.StartPeriod = image.StartPeriod ?? out.StartPeriod;
  if (!out.StartInterval) out.StartInterval = image.StartInterval ?? out.StartInterval;
  if (!out.Retries) out.Retries = image.Retries ?? out.Retries;
  return out;
}

/** Pure: returns the container's Config with the image's defaults filled in. */
export function mergeImageConfig(imageConfig: ImageConfig | ImageRuntimeConfig | null | undefined, containerConfig: ContainerConfig): ContainerConfig {
  const img: ImageRuntimeConfig | undefined =
    imageConfig && 'rootfs' in imageConfig ? (imageConfig as ImageConfig).config : (imageConfig as ImageRuntimeConfig | null | undefined) ?? undefined;
  const out: ContainerConfig = { ...containerConfig };
  if (!img) return out;
  if (!out.User && img.User) out.User = img.User;
  if (img.ExposedPorts && Object.keys(img.ExposedPorts).length) out.ExposedPorts = { ...img.ExposedPorts, ...(out.ExposedPorts ?? {}) };
  if (!out.Env || out.Env.length === 0) {
    if (img.Env) out.Env = [...img.Env];
  } else if (img.Env) {
    const keys = new Set(out.Env.map(envKey));
    out.Env = [...out.Env, ...img.Env.filter((e) => !keys.has(envKey(e)))];
  }
  if (img.Labels && Object.keys(img.Labels).length) out.Labels = { ...img.Labels, ...(out.Labels ?? {}) };
  if (!out.Entrypoint || out.Entrypoint.length === 0) {
    if (!out.Cmd || out.Cmd.length === 0) {
      if (img.Cmd) out.Cmd = [...img.Cmd];
      if (img.ArgsEscaped !== undefined) out.ArgsEscaped = img.ArgsEscaped;
    }
    if (out.Entrypoint === undefined || out.Entrypoint === null) {
      if (img.Entrypoint) out.Entrypoint = [...img.Entrypoint];
    }
  }
  const hc = mergeHealth(out.Healthcheck, img.Healthcheck);
  if (hc !== undefined) out.Healthcheck = hc;
  if (!out.WorkingDir && img.WorkingDir) out.WorkingDir = img.WorkingDir;
  if (img.Volumes && Object.keys(img.Volumes).length) out.Volumes = { ...img.Volumes, ...(out.Volumes ?? {}) };
  if (!out.StopSignal && img.StopSignal) out.StopSignal = img.StopSignal;
  if ((!out.Shell || out.Shell.length === 0) && img.Shell?.length) out.Shell = [...img.Shell];
  if ((!out.OnBuild || out.OnBuild.length === 0) && img.OnBuild?.length) out.OnBuild = [...img.OnBuild];
  return out;
}

/** The image's runtime config as a ContainerConfig (what `docker image inspect` shows as Config). */
export function imageContainerConfig(config: ImageConfig): ContainerConfig {
  const c = config.config ?? {};
  const out: ContainerConfig = {};
  const keys = ['User', 'ExposedPorts', 'Env', 'Entrypoint', 'Cmd', 'Volumes', 'WorkingDir', 'Labels', 'StopSignal', 'ArgsEscaped', 'Healthcheck', 'OnBuild', 'Shell', 'StopTimeout'] as const;
  for (const k of keys) if (c[k] !== undefined) (out as Record<string, unknown>)[k] = c[k];
  return out;
}
