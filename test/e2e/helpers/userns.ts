/**
 * e2e helpers for berthd under --userns-remap: why user namespaces cannot be tested here, and
 * a temp dir holding the remap user's own passwd/group/subuid/subgid files, handed to berthd
 * through the BERTH_USERNS_* env (the host's /etc is never touched). The remap user is
 * `berth-e2e`; root inside maps to HOST_UID/HOST_GID unless another subuid text is given.
 */
import fs from 'node:fs';
import path from 'node:path';
import { berthdSkipReason } from './berthd.js';

export const HOST_UID = 300000;
export const HOST_GID = 400000;

/** berthd's skip reason, or that user namespaces are disabled; null when they can run. */
export function usernsSkipReason(): string | null {
  const base = berthdSkipReason();
  if (base) return base;
  if (Number(fs.readFileSync('/proc/sys/user/max_user_namespaces', 'utf8')) === 0) return 'user namespaces are disabled (user.max_user_namespaces = 0)';
  return null;
}

/** A temp dir the remapped root can reach (o+x, as dockerd requires above its data root), with the id files. The caller removes it. */
export function remapDir(subuid = `# berth e2e\nberth-e2e:${HOST_UID}:65536\n`): { dir: string; env: Record<string, string> } {
  const dir = fs.mkdtempSync(path.join('/tmp', 'bd-userns-'));
  fs.chmodSync(dir, 0o711);
  const f = (name: string, text: string): string => {
    fs.writeFileSync(path.join(dir, name), text);
    return path.join(dir, name);
  };
  return {
    dir,
    env: {
      BERTH_USERNS_PASSWD: f('passwd', 'berth-e2e:x:4321:4321::/nonexistent:/bin/false\n'),
      BERTH_USERNS_GROUP: f('group', 'berth-e2e:x:4321:\n'),
      BERTH_USERNS_SUBUID: f('subuid', subuid),
      BERTH_USERNS_SUBGID: f('subgid', `4321:${HOST_GID}:65536\n`),
    },
  };
}
