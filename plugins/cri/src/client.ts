/**
 * A small CRI client on the plugin's proto (for tests, benchmarks and tools — kubelet has its
 * own): each RuntimeService / ImageService call as a promise, GetContainerEvents as a callback.
 */
import * as grpc from '@grpc/grpc-js';
import type { Msg } from './mapping.js';
import { loadCriPackage } from './server.js';

/** One unary call: method name, request → response (rejects with the gRPC error, `code` set). */
export type CriCall = (method: string, req?: Msg) => Promise<Msg>;

export interface CriClient {
  runtime: CriCall;
  image: CriCall;
  /** Follow GetContainerEvents; returns the function that stops following. */
  events(onEvent: (ev: Msg) => void, onError?: (err: Error) => void): () => void;
  close(): void;
}

type Unary = (req: Msg, cb: (err: grpc.ServiceError | null, res: Msg) => void) => void;

export function connectCri(socket: string): CriClient {
  const pkg = loadCriPackage();
  const rt = new pkg.RuntimeService(`unix://${socket}`, grpc.credentials.createInsecure());
  const im = new pkg.ImageService(`unix://${socket}`, grpc.credentials.createInsecure());
  const caller =
    (c: grpc.Client): CriCall =>
    (method, req = {}) =>
      new Promise((resolve, reject) => {
        const fn = (c as unknown as Record<string, Unary | undefined>)[method];
        if (!fn) return reject(new Error(`no CRI method ${method}`));
        fn.call(c, req, (err, res) => (err ? reject(err) : resolve(res)));
      });
  return {
    runtime: caller(rt),
    image: caller(im),
    events(onEvent, onError) {
      const call = (rt as unknown as { GetContainerEvents(req: Msg): grpc.ClientReadableStream<Msg> }).GetContainerEvents({});
      call.on('data', onEvent);
      call.on('error', (err: grpc.ServiceError) => {
        if (err.code !== grpc.status.CANCELLED) onError?.(err);
      });
      return () => call.cancel();
    },
    close() {
      rt.close();
      im.close();
    },
  };
}
