/**
 * The network driver contract (token `INetworkDriver`): what a networking plugin exposes
 * to the daemon's /networks routes. Per-container networking itself happens in the
 * `networking`, `beforeStart` and `releaseNetwork` hooks.
 */
export interface NetworkInfo {
  Name: string;
  Id: string;
  Driver: string;
  Scope: 'local';
  Options?: Record<string, string>;
  Labels?: Record<string, string>;
}

export interface NetworkDriver {
  readonly name: string;
  list(): Promise<NetworkInfo[]>;
  inspect(idOrName: string): Promise<NetworkInfo | null>;
}
