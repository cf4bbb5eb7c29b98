/**
 * The image store contract as the core sees it (token `IImageStore`). The image-store
 * package provides the real one; without one, containers run on a plain root filesystem
 * (`rootfs` at create, or a beforeMount tap that sets the start context's rootfsPath).
 */
import type { ContainerConfig } from './types.js';

export interface ResolvedImage {
  /** Image ID, "sha256:<hex>". */
  id: string;
  /** The image config's container defaults (Cmd, Entrypoint, Env, WorkingDir, User, …). */
  config?: ContainerConfig;
}

export interface ImageStore {
  /** Resolve a reference (name[:tag], name@digest, ID or ID prefix); null when unknown. */
  resolve(ref: string): Promise<ResolvedImage | null>;
}

/**
 * Fill a container's Config from its image's config the way dockerd's create does
 * (daemon/create.go `merge`): Env merged by key (container wins), Cmd and Entrypoint from the
 * image only when the container sets neither, the other fields when the container leaves them empty.
 */
export function mergeImageConfigIntoContainer(config: ContainerConfig, image: ContainerConfig | undefined): ContainerConfig {
  if (!image) return { ...config };
  const out: ContainerConfig = { ...config };
  if (!out.User && image.User) out.User = image.User;
  if ((!out.ExposedPorts || Object.keys(out.ExposedPorts).length === 0) && image.ExposedPorts) out.ExposedPorts = { ...image.ExposedPorts };
  else if (out.ExposedPorts && image.ExposedPorts) out.ExposedPorts = { ...image.ExposedPorts, ...out.ExposedPorts };
  if (image.Env && image.Env.length) {
    const keys = new Set((out.Env ?? []).map((e) => e.split('=')[0]));
    out.Env = [...image.Env.filter((e) => !keys.has(e.split('=')[0])), ...(out.Env ?? [])];
  }
  if (!out.Labels && image.Labels) out.Labels = { ...image.Labels };
  else if (out.Labels && image.Labels) out.Labels = { ...image.Labels, ...out.Labels };
  const noEntrypoint = !out.Entrypoint || out.Entrypoint.length === 0;
  if (noEntrypoint && (!out.Cmd || out.Cmd.length === 0)) {
    out.Cmd = image.Cmd ? [...image.Cmd] : out.Cmd;
    if (image.Entrypoint) out.Entrypoint = [...image.Entrypoint];
  } else if (noEntrypoint && image.Entrypoint) {
    out.Entrypoint = [...image.Entrypoint];
  }
  if (!out.Healthcheck && image.Healthcheck) out.Healthcheck = image.Healthcheck;
  if (!out.WorkingDir && image.WorkingDir) out.WorkingDir = image.WorkingDir;
  if ((!out.Volumes || Object.keys(out.Volumes).length === 0) && image.Volumes) out.Volumes = { ...image.Volumes };
  if (!out.StopSignal && image.StopSignal) out.StopSignal = image.StopSignal;
  if (!out.Shell && image.Shell) out.Shell = [...image.Shell];
  return out;
}
