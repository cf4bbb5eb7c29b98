/** Reading hijacked sockets in route tests. */
import type { Duplex } from 'node:stream';
import { expect } from 'vitest';

/** Everything the socket delivers (after `head`) until it ends or closes. */
export function readAll(sock: Duplex, head: Buffer): Promise<Buffer> {
  return new Promise((resolve) => {
    const parts = [head];
    sock.on('data', (d: Buffer) => parts.push(d));
    sock.on('end', () => resolve(Buffer.concat(parts)));
    sock.on('close', () => resolve(Buffer.concat(parts)));
  });
}

/** Split a stdcopy-framed stream; every byte must belong to a whole frame. */
export function demux(buf: Buffer): { stdout: string; stderr: string } {
  let stdout = '';
  let stderr = '';
  let off = 0;
  while (off + 8 <= buf.length) {
    const stream = buf[off];
    const len = buf.readUInt32BE(off + 4);
    const payload = buf.subarray(off + 8, off + 8 + len).toString();
    if (stream === 1) stdout += payload;
    else if (stream === 2) stderr += payload;
    else throw new Error(`bad stream byte ${stream}`);
    off += 8 + len;
  }
  expect(off).toBe(buf.length);
  return { stdout, stderr };
}
