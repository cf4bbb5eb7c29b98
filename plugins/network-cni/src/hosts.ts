/**
 * A running container's /etc/hosts when its endpoints change (network connect/disconnect, and
 * the deferred attach of a user-namespaced container): as libnetwork's sandbox does on an
 * endpoint's join and leave, a record `IP<TAB>hostname` is added for the endpoint's address,
 * and the records of that address with that name are removed again. The hostname is the one
 * network-basic wrote the file with (Config.Hostname, else the ID's first 12 hex digits).
 * The file is bind-mounted into the running container: it is changed in place (same inode),
 * never replaced by a rename the container would not see.
 */
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import type { ContainerRecord, DeepReadonly } from '@berth/core';

/** The name the container's own records carry. */
export function hostsName(rec: DeepReadonly<ContainerRecord>): string {
  return rec.Config.Hostname || rec.ID.slice(0, 12);
}

/** Add a record per address (the file as network-basic wrote it, in place). */
export async function addHostsRecords(file: string, rec: DeepReadonly<ContainerRecord>, ips: readonly string[]): Promise<void> {
  if (!ips.length) return;
  await appendFile(file, ips.map((ip) => `${ip}\t${hostsName(rec)}\n`).join(''));
}

/** Remove the container's own records of `ip` (other records, and the user's own lines, stay). */
export async function removeHostsRecords(file: string, rec: DeepReadonly<ContainerRecord>, ip: string): Promise<void> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  const record = `${ip}\t${hostsName(rec)}`;
  const kept = text.split('\n').filter((l) => l !== record);
  const out = kept.join('\n');
  if (out !== text) await writeFile(file, out);
}
