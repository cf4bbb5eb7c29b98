/**
 * A container's resolv.conf on user networks: it names the DNS server (dns.ts) of one of the
 * container's user networks (its gateway) instead of the host's resolvers, which that server
 * relays to. The nameservers it replaced are kept in a comment, as dockerd keeps them
 * (`# ExtServers: [...]`), so that the file can go back to them when the container leaves its
 * last user network; `options ndots:0` (dockerd's for its embedded DNS) is marked when it was
 * added here. Directives other than nameserver/search/options (sortlist, lookup, …) stay, after
 * the options, as dockerd's resolv.conf generator keeps them; comments go, as there. The file is
 * bind-mounted into the running container: it is changed in place (same inode), as hosts.ts
 * changes /etc/hosts.
 *
 * Back to no user network: dockerd leaves the file as it is (its embedded server stays inside the
 * container's namespace and keeps relaying to the ExtServers); berth's server is on the network's
 * gateway and goes with the network, so the file gets back the directives it had: the replaced
 * nameservers, the search, options and other directives, none of the comments written here.
 */
import { readFile, writeFile } from 'node:fs/promises';

const EXT = /^# ExtServers: \[([^\]]*)\]$/m;
const NDOTS_MARK = '# Option ndots from: internal';

/** The lines of a resolv.conf that are directives other than nameserver, search/domain and options (comments and blank lines are none). */
function otherDirectives(text: string): string[] {
  return text.split('\n').filter((l) => /^\s*[^\s#;]/.test(l) && !/^\s*(nameserver|search|domain|options)\b/.test(l));
}

/** The first nameserver a resolv.conf names ('' when none). */
function firstNameserver(text: string): string {
  return /^\s*nameserver\s+(\S+)/m.exec(text)?.[1] ?? '';
}

/** The nameservers a resolv.conf names, or the ones it replaced (its ExtServers comment) when it names a user network's server. */
function externalServers(text: string): string[] {
  const ext = EXT.exec(text);
  if (ext) return ext[1].split(' ').filter(Boolean);
  return [...text.matchAll(/^\s*nameserver\s+(\S+)/gm)].map((m) => m[1]);
}

/** resolv.conf for a user network: its DNS server, the search/options lines kept, ndots:0 unless set, the other directives, the replaced nameservers in a comment. */
export function userNetworkResolvConf(original: string, server: string): string {
  const kept = original.split('\n').filter((l) => /^\s*(search|domain|options)\b/.test(l));
  const lines = [`nameserver ${server}`, ...kept];
  const addNdots = !kept.some((l) => /\bndots:/.test(l));
  if (addNdots) lines.push('options ndots:0');
  lines.push(...otherDirectives(original), '', `# ExtServers: [${externalServers(original).join(' ')}]`);
  if (addNdots || original.includes(NDOTS_MARK)) lines.push(NDOTS_MARK);
  return `${lines.join('\n')}\n`;
}

/**
 * The resolv.conf a user network's version came from, laid out as network-basic writes one (other
 * directives, search, nameservers, options): the replaced nameservers back, ndots:0 gone if added
 * here, no comment (undefined: not such a file).
 */
export function externalResolvConf(text: string): string | undefined {
  const ext = EXT.exec(text);
  if (!ext) return undefined;
  const marked = text.includes(NDOTS_MARK);
  const lines = text.split('\n');
  const search = lines.filter((l) => /^\s*(search|domain)\b/.test(l));
  const options = lines.filter((l) => /^\s*options\b/.test(l) && !(marked && l === 'options ndots:0'));
  const out = [...otherDirectives(text), ...search, ...externalServers(text).map((s) => `nameserver ${s}`), ...options];
  return out.length ? `${out.join('\n')}\n` : '';
}

/**
 * Point the resolv.conf at `file` (in place) at the first of `servers` (the DNS servers of the
 * container's user networks, its first network's first), unless it names one of them already;
 * with no servers left, back at the nameservers it replaced. Returns whether it wrote.
 */
export async function pointResolvConf(file: string, servers: readonly string[]): Promise<boolean> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
  const ours = EXT.test(text);
  if (ours && servers.includes(firstNameserver(text))) return false;
  const out = servers.length ? userNetworkResolvConf(text, servers[0]) : externalResolvConf(text);
  if (out === undefined || out === text) return false;
  await writeFile(file, out);
  return true;
}
