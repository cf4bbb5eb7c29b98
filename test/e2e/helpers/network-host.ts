/**
 * What a network e2e test changes on the host and must put back, even on failure: the bridges
 * its berthd's networks made (the CNI bridge plugin makes them; `docker network rm` or berthd
 * may not get to delete them) and net.ipv4.ip_forward (the bridge plugin turns it on for a
 * gateway bridge). Take the state in beforeAll, restore it in afterAll.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

const FORWARD = '/proc/sys/net/ipv4/ip_forward';

export interface HostNetworkState {
  /** Delete these bridges (those that exist) and write ip_forward back as it was. */
  restore(bridges: readonly string[]): void;
}

export function saveHostNetworkState(): HostNetworkState {
  const forward = fs.readFileSync(FORWARD, 'utf8');
  return {
    restore(bridges) {
      for (const b of bridges) {
        try {
          execFileSync('ip', ['link', 'del', b], { stdio: 'ignore' });
        } catch {
          // not made, or already gone
        }
      }
      fs.writeFileSync(FORWARD, forward);
    },
  };
}
