/**
 * The image store contract as the core sees it (token `IImageStore`). The image-store
 * package provides the real one; without one, containers run on a plain root filesystem
 * (`rootfs` at create, or a beforeMount tap that sets the start context's rootfsPath).
 */
import type { ContainerConfig, HealthConfig } from './types.js';

export interface ResolvedImage {
  /** Image ID, "sha256:<hex>". */
  id: string;
  /** The image config's container defaults (Cmd, Entrypoint, Env, WorkingDir, User, …). */
  config?: ContainerConfig;
}

export interface ImageStore {
  /** Resolve a reference (name[:tag], name@digest, ID or ID prefix); null when unknown. */
  resolve(ref: string): Promise<ResolvedImage | null>;
  /** Bytes of a container's writable layer and whole root filesystem (prune's SpaceReclaimed); absent: not measured. */
  rootfsSizes?(containerId: string): Promise<{ SizeRw: number; SizeRootFs: number }>;
}

/**
 * Fill a container's Config from its image's config the way dockerd's create does (moby
 * daemon/commit.go `merge`): the container's settings win; Env is merged by key (the
 * container's first, then the image's that it does not override); Cmd comes from the image
 * only when the container sets neither Cmd nor Entrypoint; Entrypoint from the image only when
 * the container's is unset (an explicit empty one, `--entrypoint ""`, clears it); Healthcheck
 * fields are filled from the image; ExposedPorts, Volumes and Labels are unions. Pure.
 */
export function mergeImageConfigIntoContainer(config: ContainerConfig, image: ContainerConfig | null | undefined): ContainerConfig {
  const out: ContainerConfig = { ...config };
  if (!image) return out;
  if (!out.User && image.User) out.User = image.User;
  if (image.ExposedPorts && Object.keys(image.ExposedPorts).length) out.ExposedPorts = { ...image.ExposedPorts, ...(out.ExposedPorts ?? {}) };
  if (!out.Env || out.Env.length === 0) {
    if (image.Env) out.Env = [...image.Env];
  } else if (image.Env) {
    const keys = new Set(out.Env.map(envKey));
    out.Env = [...out.Env, ...image.Env.filter((e) => !keys.has(envKey(e)))];
  }
  if (image.Labels && Object.keys(image.Labels).length) out.Labels = { ...image.Labels, ...(out.Labels ?? {}) };
  if (!out.Entrypoint || out.Entrypoint.length === 0) {
    if (!out.Cmd || out.Cmd.length === 0) {
      if (image.Cmd) out.Cmd = [...image.Cmd];
      if (image.ArgsEscaped !== undefined) out.ArgsEscaped = image.ArgsEscaped;
    }
    if (out.Entrypoint === undefined || out.Entrypoint === null) {
      if (image.Entrypoint) out.Entrypoint = [...image.Entrypoint];
    }
  }
  const hc = mergeHealth(out.Healthcheck, image.Healthcheck);
  if (hc !== undefined) out.Healthcheck = hc;
  if (!out.WorkingDir && image.WorkingDir) out.WorkingDir = image.WorkingDir;
  if (image.Volumes && Object.keys(image.Volumes).length) out.Volumes = { ...image.Volumes, ...(out.Volumes ?? {}) };
  if (!out.StopSignal && image.StopSignal) out.StopSignal = image.StopSignal;
  if ((!out.Shell || out.Shell.length === 0) && image.Shell?.length) out.Shell = [...image.Shell];
  if ((!out.OnBuild || out.OnBuild.length === 0) && image.OnBuild?.length) out.OnBuild = [...image.OnBuild];
  return out;
}

function envKey(e: string): string {
  const i = e.indexOf('=');
  return i === -1 ? e : e.slice(0, i);
}

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
