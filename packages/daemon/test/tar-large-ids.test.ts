/**
 * Owner IDs past the tar header's numeric fields survive docker cp both ways: tar-stream
 * writes uid/gid as 6 octal digits (saturating at 262143), so berth writes larger IDs in pax
 * records (as Go's archive/tar and GNU tar do), and reads pax uid/gid back (an ID past ustar's
 * 7 digits, 2097151, arrives only there). The cp tests need root (chown to those IDs).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { afterEach, describe, expect, it } from 'vitest';
import { idsOf, withExactIds } from '@berth/core';
import { extractInto, tarPath } from '../src/archive.js';

const BIG_UID = 300_000;
const BIG_GID = 400_001;
/** Past ustar's 7-digit octal field too (2097151): only pax records can carry it. */
const HUGE_UID = 3_000_000;
const HUGE_GID = 4_000_001;
const root = process.getuid?.() === 0;
let dir = '';
afterEach(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
  dir = '';
});

async function headersOf(stream: NodeJS.ReadableStream | tar.Pack): Promise<tar.Header[]> {
  const out: tar.Header[] = [];
  const ex = tar.extract();
  ex.on('entry', (h, s, next) => {
    out.push(h);
    s.on('end', next);
    s.resume();
  });
  await new Promise<void>((resolve, reject) => {
    ex.on('finish', resolve);
    ex.on('error', reject);
    (stream as NodeJS.ReadableStream).pipe(ex);
  });
  return out;
}

describe('large owner IDs in tar headers', () => {
  it('withExactIds moves IDs past the octal field into pax records; idsOf reads them back', async () => {
    const pack = tar.pack();
    pack.entry(withExactIds({ name: 'big', uid: BIG_UID, gid: BIG_GID, mode: 0o644 }), 'x');
    pack.entry(withExactIds({ name: 'small', uid: 1000, gid: 1000, mode: 0o644 }), 'y');
    pack.finalize();
    const [big, small] = await headersOf(pack);
    expect(idsOf(big!)).toEqual({ uid: BIG_UID, gid: BIG_GID });
    expect(idsOf(small!)).toEqual({ uid: 1000, gid: 1000 });
    expect(small!.pax ?? null).toBeNull();
  });

  it('without them the numeric field saturates (what the helpers are for)', async () => {
    const pack = tar.pack();
    pack.entry({ name: 'big', uid: BIG_UID, gid: BIG_GID, mode: 0o644 }, 'x');
    pack.finalize();
    const [h] = await headersOf(pack);
    expect(idsOf(h!).uid).not.toBe(BIG_UID);
  });

  it.skipIf(!root)(`docker cp out: GNU tar lists the exact owner of a file chowned past 262143${root ? '' : ' (skipped: chown needs root)'}`, async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-tar-ids-'));
    fs.writeFileSync(path.join(dir, 'f'), 'data');
    fs.chownSync(path.join(dir, 'f'), BIG_UID, BIG_GID);
    const ac = new AbortController();
    const chunks: Buffer[] = [];
    for await (const c of tarPath(dir, '/f', 'f', ac.signal)) chunks.push(c as Buffer);
    const listing = execFileSync('tar', ['-tvf', '-', '--numeric-owner'], { input: Buffer.concat(chunks), encoding: 'utf8' });
    expect(listing).toContain(`${BIG_UID}/${BIG_GID}`);
  });

  it.skipIf(!root)(`docker cp in with -a: a pax owner past the ustar field lands exactly${root ? '' : ' (skipped: chown needs root)'}`, async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-tar-ids-'));
    const src = path.join(dir, 'src');
    const dest = path.join(dir, 'root');
    fs.mkdirSync(src);
    fs.mkdirSync(dest);
    fs.writeFileSync(path.join(src, 'g'), 'data');
    fs.chownSync(path.join(src, 'g'), HUGE_UID, HUGE_GID);
    // GNU tar's posix format writes the large owner as pax records, as the docker CLI's Go tar does
    const body = execFileSync('tar', ['--format=posix', '-C', src, '-cf', '-', 'g']);
    await extractInto(dest, '/', Readable.from([body]), { noOverwriteDirNonDir: false, copyUIDGID: true });
    const st = fs.statSync(path.join(dest, 'g'));
    expect({ uid: st.uid, gid: st.gid }).toEqual({ uid: HUGE_UID, gid: HUGE_GID });
  });
});
