/**
 * The event bus (token `IEventBus`): Docker's event shape, a typed eventemitter3 for
 * listeners, and a bounded ring of past events for GET /events?since=.
 */
import { EventEmitter } from 'eventemitter3';
import type { Clock } from './clock.js';

export type EventType = 'container' | 'image' | 'volume' | 'network' | 'daemon' | 'plugin' | 'node' | 'service' | 'secret' | 'config';

/** Docker's EventMessage (swagger: EventMessage). */
export interface DockerEvent {
  Type: EventType;
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  scope: 'local' | 'swarm';
  /** Unix seconds. */
  time: number;
  /** Unix nanoseconds, exact (a JS number loses precision beyond 2^53; the API writes it as a JSON integer). */
  timeNano: bigint;
}

export interface EventBusEvents {
  event: [DockerEvent];
}

export interface EventBus {
  publish(type: EventType, action: string, actorId: string, attributes?: Record<string, string>): DockerEvent;
  /** Past events with since <= timeNano <= until (nanoseconds), oldest first. */
  history(opts?: { sinceNano?: bigint; untilNano?: bigint }): DockerEvent[];
  /** Subscribe; returns the unsubscribe function. A throwing listener is logged, never breaks the others. */
  subscribe(listener: (e: DockerEvent) => void): () => void;
}

export class MemoryEventBus implements EventBus {
  readonly emitter = new EventEmitter<EventBusEvents>();
  private readonly ring: DockerEvent[] = [];
  private readonly listeners = new Set<(e: DockerEvent) => void>();

  constructor(
    private readonly clock: Clock,
    private readonly capacity = 1024,
    private readonly onListenerError: (err: unknown) => void = () => {},
  ) {}

  publish(type: EventType, action: string, actorId: string, attributes: Record<string, string> = {}): DockerEvent {
    const nano = this.clock.nowNano();
    const e: DockerEvent = {
      Type: type,
      Action: action,
      Actor: { ID: actorId, Attributes: { ...attributes } },
      scope: 'local',
      time: Number(nano / 1_000_000_000n),
      timeNano: nano,
    };
    this.ring.push(e);
    if (this.ring.length > this.capacity) this.ring.splice(0, this.ring.length - this.capacity);
    // Each listener isolated: eventemitter3 stops at the first throwing listener.
    for (const l of [...this.listeners]) {
      try {
        l(e);
      } catch (err) {
        this.onListenerError(err);
      }
    }
    try {
      this.emitter.emit('event', e);
    } catch (err) {
      this.onListenerError(err);
    }
    return e;
  }

  history(opts: { sinceNano?: bigint; untilNano?: bigint } = {}): DockerEvent[] {
    return this.ring.filter(
      (e) =>
        (opts.sinceNano === undefined || e.timeNano >= opts.sinceNano) &&
        (opts.untilNano === undefined || e.timeNano <= opts.untilNano),
    );
  }

  subscribe(listener: (e: DockerEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
