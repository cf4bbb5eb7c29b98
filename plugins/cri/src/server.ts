/**
 * The CRI gRPC server: loads the plugin's own proto (proto/runtime.proto, runtime.v1's wire
 * format) with @grpc/proto-loader, serves RuntimeService and ImageService on a unix socket, and
 * turns berth's typed errors (errorKind) into gRPC status codes.
 */
import { chmod, mkdir, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { errorKind, errorMessage, type ErrorKind, type Logger } from '@berth/core';
import type { Msg } from './mapping.js';
import { DeadlineError, type RuntimeServiceImpl } from './runtime-service.js';
import type { ImageServiceImpl } from './image-service.js';

/** The proto file (proto/ beside src/ and dist/). */
export const PROTO_FILE = fileURLToPath(new URL('../proto/runtime.proto', import.meta.url));

/** proto-loader's options: field names as in the proto, int64 as decimal strings, enums as numbers. */
export const LOADER_OPTIONS: protoLoader.Options = { keepCase: true, longs: String, enums: Number, defaults: true, oneofs: true };

export function loadCriPackage(): { RuntimeService: grpc.ServiceClientConstructor; ImageService: grpc.ServiceClientConstructor } {
  const def = protoLoader.loadSync(PROTO_FILE, LOADER_OPTIONS);
  const pkg = grpc.loadPackageDefinition(def) as any;
  return pkg.runtime.v1;
}

const CODE: Record<ErrorKind, grpc.status> = {
  InvalidParameter: grpc.status.INVALID_ARGUMENT,
  Unauthorized: grpc.status.UNAUTHENTICATED,
  Forbidden: grpc.status.PERMISSION_DENIED,
  NotFound: grpc.status.NOT_FOUND,
  Conflict: grpc.status.FAILED_PRECONDITION,
  NotModified: grpc.status.ALREADY_EXISTS,
  NotImplemented: grpc.status.UNIMPLEMENTED,
  Unavailable: grpc.status.UNAVAILABLE,
  System: grpc.status.UNKNOWN,
};

/** gRPC status code of an error a handler threw. */
export function grpcCode(err: unknown): grpc.status {
  if (err instanceof DeadlineError) return grpc.status.DEADLINE_EXCEEDED;
  if (err instanceof TypeError) return grpc.status.INVALID_ARGUMENT;
  return CODE[errorKind(err)];
}

type Handler = (req: Msg) => Msg | Promise<Msg>;

function unary(name: string, fn: Handler, logger: Logger): grpc.handleUnaryCall<Msg, Msg> {
  return (call, callback) => {
    Promise.resolve()
      .then(() => fn(call.request))
      .then(
        (res) => callback(null, res),
        (err: unknown) => {
          const code = grpcCode(err);
          if (code === grpc.status.UNKNOWN) logger.error('CRI call failed', { method: name, error: errorMessage(err) });
          else logger.debug('CRI call refused', { method: name, error: errorMessage(err) });
          callback({ code, details: errorMessage(err) });
        },
      );
  };
}

export interface CriServer {
  close(): Promise<void>;
}

/** Serve both services on `socket` (an old socket file there is replaced; the socket is root's, 0660). */
export async function startCriServer(opts: { socket: string; runtime: RuntimeServiceImpl; images: ImageServiceImpl; logger: Logger }): Promise<CriServer> {
  const { RuntimeService, ImageService } = loadCriPackage();
  const server = new grpc.Server();
  const rt = opts.runtime as unknown as Record<string, Handler>;
  const rtImpl: grpc.UntypedServiceImplementation = {};
  for (const name of Object.keys(RuntimeService.service)) {
    if (name === 'GetContainerEvents') continue;
    const fn = rt[name];
    if (typeof fn !== 'function') throw new Error(`CRI RuntimeService.${name} has no handler`);
    rtImpl[name] = unary(name, fn.bind(opts.runtime), opts.logger);
  }
  rtImpl.GetContainerEvents = ((call: grpc.ServerWritableStream<Msg, Msg>) => {
    let off: (() => void) | undefined;
    try {
      off = opts.runtime.containerEvents((ev) => call.write(ev));
    } catch (err) {
      call.destroy(Object.assign(new Error(errorMessage(err)), { code: grpcCode(err) }));
      return;
    }
    const end = () => off?.();
    call.on('cancelled', end);
    call.on('close', end);
    call.on('error', end);
  }) as grpc.handleServerStreamingCall<Msg, Msg>;
  server.addService(RuntimeService.service, rtImpl);
  const im = opts.images as unknown as Record<string, Handler>;
  const imImpl: grpc.UntypedServiceImplementation = {};
  for (const name of Object.keys(ImageService.service)) imImpl[name] = unary(name, im[name]!.bind(opts.images), opts.logger);
  server.addService(ImageService.service, imImpl);

  await mkdir(dirname(opts.socket), { recursive: true, mode: 0o711 });
  await rm(opts.socket, { force: true });
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix://${opts.socket}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
  );
  await chmod(opts.socket, 0o660);
  return {
    async close() {
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 2000);
        server.tryShutdown(() => {
          clearTimeout(t);
          resolve();
        });
      });
      await rm(opts.socket, { force: true });
    },
  };
}
