/**
 * Attach sessions read a container's output from its json-file log. A container that
 * exits and is auto-removed (`docker run --rm`) must not lose the log before the attached
 * clients have read it: the daemon's plugin holds `beforeRemove` until the sessions of
 * that container have drained (bounded).
 */
import { definePlugin, type Plugin } from '@berth/core';

export class AttachTracker {
  private readonly active = new Map<string, Set<Promise<unknown>>>();

  track(containerId: string, p: Promise<unknown>): void {
    let set = this.active.get(containerId);
    if (!set) this.active.set(containerId, (set = new Set()));
    set.add(p);
    const drop = () => {
      set!.delete(p);
      if (set!.size === 0 && this.active.get(containerId) === set) this.active.delete(containerId);
    };
    p.then(drop, drop);
  }

  count(containerId: string): number {
    return this.active.get(containerId)?.size ?? 0;
  }

  /** Wait for the container's sessions, at most `timeoutMs`. */
  async drain(containerId: string, timeoutMs: number): Promise<void> {
    const set = this.active.get(containerId);
    if (!set || set.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...set]), new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    if (timer) clearTimeout(timer);
  }
}

export const ATTACH_DRAIN_PLUGIN = 'daemon-attach-drain';

export function attachDrainPlugin(tracker: AttachTracker, timeoutMs = 5000): Plugin {
  return definePlugin({
    name: ATTACH_DRAIN_PLUGIN,
    type: 'io.berth.daemon.v1',
    apply(hooks) {
      hooks.beforeRemove.tapPromise({ name: ATTACH_DRAIN_PLUGIN }, async (ctx) => {
        await tracker.drain(ctx.container.ID, timeoutMs);
      });
    },
  });
}
