/**
 * conmon's attach socket is SOCK_SEQPACKET: every packet it sends is one read of the
 * container's output, prefixed by one byte naming the pipe (2 stdout, 3 stderr; with a TTY
 * everything is stdout). What we send is written to the container's stdin as is; shutting
 * down our write side closes the container's stdin unless conmon runs with
 * --leave-stdin-open.
 */
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import { ConflictError, SystemError, type AttachSession, type AttachStreams } from '@berth/core';

type SeqpacketSocketT = import('node-unix-socket').SeqpacketSocket;
let SeqpacketSocketCtor: (new () => SeqpacketSocketT) | undefined;
/**
 * Load node-unix-socket from its real path: its loader finds the prebuilt binary package
 * (node-unix-socket-linux-x64-gnu) next to it in pnpm's store, which a module loaded
 * through the workspace's symlink does not see (seen in berthd). A failure is an error of
 * the attach, not of the daemon.
 */
function seqpacket(): new () => SeqpacketSocketT {
  if (SeqpacketSocketCtor) return SeqpacketSocketCtor;
  try {
    const local = createRequire(import.meta.url);
    const real = fs.realpathSync.native(local.resolve('node-unix-socket'));
    const mod = createRequire(real)(real) as typeof import('node-unix-socket');
    SeqpacketSocketCtor = mod.SeqpacketSocket;
    return SeqpacketSocketCtor;
  } catch (err) {
    throw new SystemError(`cannot load node-unix-socket (needed for conmon's SOCK_SEQPACKET attach socket): ${(err as Error).message}`, {
      cause: err,
    });
  }
}

const STDOUT_PIPE = 2;
const STDERR_PIPE = 3;

export function attachSocket(socketPath: string, streams: AttachStreams, tty: boolean): Promise<AttachSession> {
  let Ctor: new () => SeqpacketSocketT;
  try {
    Ctor = seqpacket();
  } catch (err) {
    return Promise.reject(err as Error);
  }
  return new Promise<AttachSession>((resolve, reject) => {
    const sock = new Ctor();
    let connected = false;
    let ended = false;
    let resolveDone!: () => void;
    const done = new Promise<void>((r) => (resolveDone = r));
    const stdin = streams.stdin ?? null;
    const onStdin = (d: Buffer | string): void => {
      if (ended) return;
      const b = typeof d === 'string' ? Buffer.from(d) : d;
      try {
        sock.write(b, 0, b.length);
      } catch {
        /* socket gone */
      }
    };
    const onStdinEnd = (): void => {
      if (ended) return;
      try {
        sock.end();
      } catch {
        /* closed */
      }
    };
    const finish = (): void => {
      if (ended) return;
      ended = true;
      stdin?.removeListener('data', onStdin);
      stdin?.removeListener('end', onStdinEnd);
      resolveDone();
    };
    sock.on('data', (pkt: Buffer) => {
      if (pkt.length < 1) return;
      const data = pkt.subarray(1);
      if (pkt[0] === STDERR_PIPE && !tty) streams.stderr?.write(data);
      else if (pkt[0] === STDOUT_PIPE || tty) streams.stdout?.write(data);
    });
    sock.on('error', (err: Error) => {
      if (!connected) {
        finish();
        reject(new ConflictError(`cannot attach: ${err.message}`, { cause: err }));
        return;
      }
      finish();
    });
    sock.on('end', finish);
    sock.on('close', finish);
    try {
      sock.connect(socketPath, () => {
        connected = true;
        if (stdin) {
          stdin.on('data', onStdin);
          stdin.on('end', onStdinEnd);
        }
        resolve({
          detach: () => {
            finish();
            try {
              sock.destroy();
            } catch {
              /* closed */
            }
          },
          done,
        });
      });
    } catch (err) {
      reject(new ConflictError(`cannot attach: ${(err as Error).message}`, { cause: err }));
    }
  });
}
