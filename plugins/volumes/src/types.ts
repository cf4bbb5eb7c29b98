/**
 * The volume-driver interface (the shape of Docker's volume-plugin protocol, moby
 * volume/drivers) and the records the volume service keeps. A driver owns where a volume's
 * data lives and how it is mounted; the service owns names, metadata and who uses what.
 */

/** A volume as a driver reports it. */
export interface DriverVolume {
  name: string;
  /** Host path of the volume's data when mounted ('' when the driver does not say). */
  mountpoint: string;
  /** Driver-specific status (inspect's Status). */
  status?: Record<string, unknown>;
}

export interface VolumeDriver {
  /** The driver's name (`local`, or the name a volume plugin is found under). */
  readonly name: string;
  /** Make a volume; `opts` are the DriverOpts of the create. */
  create(name: string, opts: Readonly<Record<string, string>>): Promise<void>;
  remove(name: string): Promise<void>;
  /** Mount the volume for container `id`; returns the host path to bind into the container. */
  mount(name: string, id: string): Promise<string>;
  /** Release container `id`'s mount of the volume. */
  unmount(name: string, id: string): Promise<void>;
  /** Where the volume's data is (or will be) on the host ('' when unknown until mounted). */
  path(name: string): Promise<string>;
  get(name: string): Promise<DriverVolume | null>;
  list(): Promise<DriverVolume[]>;
  /** `local` volumes live on this host; `global` ones are cluster-wide (Docker's Capabilities.Scope). */
  capabilities(): Promise<{ scope: 'local' | 'global' }>;
}

/** What the service persists per volume (`<data-root>/volumes/<name>/volume.json`). */
export interface VolumeMeta {
  Name: string;
  Driver: string;
  Labels: Record<string, string>;
  /** The DriverOpts it was created with. */
  Options: Record<string, string>;
  /** RFC 3339. */
  CreatedAt: string;
}

/** dockerd's label on anonymous volumes (moby api/types/volume: AnonymousLabel); prune removes only these unless `all`. */
export const ANONYMOUS_LABEL = 'com.docker.volume.anonymous';

/** GET /volumes/{name} (moby api/types/volume.Volume). */
export interface VolumeInfo {
  Name: string;
  Driver: string;
  Mountpoint: string;
  CreatedAt: string;
  Labels: Record<string, string>;
  Scope: 'local' | 'global';
  Options: Record<string, string>;
  Status?: Record<string, unknown>;
  /** Only where asked (/system/df): Size in bytes (-1 = not measured), RefCount = containers using it. */
  UsageData?: { Size: number; RefCount: number };
}
