/**
 * Records every fs.close that fails with EBADF: a second close of an fd the code no longer owns.
 * Import it before the code under test (it patches fs.close, which modules capture when they
 * promisify it). A double close is harmless only while the number stays free; under load it
 * closes whatever the number was given to next — another client's socket, another file.
 */
import fs from 'node:fs';

const badCloses: { fd: number; stack: string }[] = [];
const original = fs.close;

function guardedClose(fd: number, cb?: fs.NoParamCallback): void {
  const stack = new Error('close').stack ?? '';
  original.call(fs, fd, (err) => {
    if (err && (err as NodeJS.ErrnoException).code === 'EBADF') badCloses.push({ fd, stack });
    cb?.(err);
  });
}
(fs as { close: typeof fs.close }).close = guardedClose as typeof fs.close;

/** The EBADF closes since the last reset. */
export function badCloseList(): readonly { fd: number; stack: string }[] {
  return badCloses;
}

export function resetBadCloses(): void {
  badCloses.length = 0;
}
