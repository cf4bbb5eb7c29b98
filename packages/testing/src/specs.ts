/**
 * Where the reference specs are (`shared/specs`: the Docker Engine API swagger, the OCI
 * runtime and image schemas, Docker's seccomp profile), for tests that validate against
 * them: BERTH_SPECS_DIR if set, else `shared/specs` beside this checkout, else beside the
 * repository this checkout was cloned from (a fresh clone in a temp dir finds the `shared/`
 * beside its origin). Throws, saying where it looked, when none has them.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

let found: string | undefined;

export function specsDir(): string {
  if (found) return found;
  const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
  const candidates: string[] = [];
  if (process.env.BERTH_SPECS_DIR) candidates.push(path.resolve(process.env.BERTH_SPECS_DIR));
  candidates.push(path.resolve(repoRoot, '../shared/specs'));
  try {
    const origin = execFileSync('git', ['-C', repoRoot, 'config', '--get', 'remote.origin.url'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    if (path.isAbsolute(origin)) candidates.push(path.resolve(origin, '../shared/specs'));
  } catch {
    // not a git checkout, or no origin
  }
  found = candidates.find((d) => existsSync(path.join(d, 'docker-engine-api/swagger.yaml')));
  if (!found) throw new Error(`the reference specs (shared/specs) are not in ${candidates.join(', ')}: put shared/ beside the repository or set BERTH_SPECS_DIR`);
  return found;
}
