/**
 * Operations Node's fs lacks: mknod (character/block devices, FIFOs) and extended attributes
 * (overlay whiteouts and opaque markers, file capabilities from layer xattrs). They run in one
 * long-lived helper process per batch of work (Debian's python3 — always on the machine —
 * calling mknod(2)/setxattr(2)/listxattr(2) without following symlinks), one request per line.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';
import { SystemError } from '@berth/core';

const HELPER = String.raw`
import os, sys, json, base64, stat
T = {'c': stat.S_IFCHR, 'b': stat.S_IFBLK, 'p': stat.S_IFIFO}
for line in sys.stdin:
    op = json.loads(line)
    res = {'ok': True}
    try:
        k = op['op']
        if k == 'mknod':
            os.mknod(op['path'], T[op['type']] | (op['mode'] & 0o7777), os.makedev(op['major'], op['minor']))
        elif k == 'setxattr':
            os.setxattr(op['path'], op['name'], base64.b64decode(op['value']), follow_symlinks=False)
        elif k == 'getxattrs':
            names = os.listxattr(op['path'], follow_symlinks=False)
            res['xattrs'] = {n: base64.b64encode(os.getxattr(op['path'], n, follow_symlinks=False)).decode() for n in names}
        else:
            res = {'ok': False, 'errno': 22, 'error': 'unknown op'}
    except OSError as e:
        res = {'ok': False, 'errno': e.errno or 0, 'error': e.strerror or str(e)}
    sys.stdout.write(json.dumps(res) + '\n')
    sys.stdout.flush()
`;

export class SpecialOpError extends SystemError {
  constructor(
    message: string,
    readonly errno: number,
  ) {
    super(message);
  }
  get code(): string {
    const codes: Record<number, string> = { 1: 'EPERM', 2: 'ENOENT', 13: 'EACCES', 17: 'EEXIST', 22: 'EINVAL', 61: 'ENODATA', 95: 'ENOTSUP' };
    return codes[this.errno] ?? `ERRNO${this.errno}`;
  }
}

interface HelperResult {
  ok: boolean;
  errno?: number;
  error?: string;
  xattrs?: Record<string, string>;
}

export class SpecialOps {
  private proc: ChildProcessWithoutNullStreams | null = null;
  private rl: Interface | null = null;
  private waiting: Array<{ resolve: (r: HelperResult) => void; reject: (e: Error) => void }> = [];
  private failed: Error | null = null;

  private start(): void {
    if (this.proc) return;
    const proc = spawn(process.env.BERTH_PYTHON ?? 'python3', ['-c', HELPER], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc = proc;
    let stderr = '';
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const fail = (err: Error) => {
      this.failed = err;
      for (const w of this.waiting.splice(0)) w.reject(err);
    };
    proc.on('error', (err) => fail(new SystemError(`special-file helper (python3) failed to start: ${err.message}`, { cause: err })));
    proc.on('exit', (code) => {
      if (this.waiting.length) fail(new SystemError(`special-file helper exited with ${code}: ${stderr.trim()}`));
      this.proc = null;
    });
    proc.stdin.on('error', () => undefined);
    this.rl = createInterface({ input: proc.stdout });
    this.rl.on('line', (line) => {
      const w = this.waiting.shift();
      if (!w) return;
      try {
        w.resolve(JSON.parse(line) as HelperResult);
      } catch (err) {
        w.reject(err as Error);
      }
    });
  }

  private async call(op: Record<string, unknown>): Promise<HelperResult> {
    if (this.failed) throw this.failed;
    this.start();
    return new Promise<HelperResult>((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.proc!.stdin.write(`${JSON.stringify(op)}\n`);
    });
  }

  private async must(op: Record<string, unknown>, what: string): Promise<HelperResult> {
    const r = await this.call(op);
    if (!r.ok) throw new SpecialOpError(`${what} ${String(op.path)}: ${r.error ?? 'failed'}`, r.errno ?? 0);
    return r;
  }

  async mknod(path: string, type: 'c' | 'b' | 'p', mode: number, major = 0, minor = 0): Promise<void> {
    await this.must({ op: 'mknod', path, type, mode, major, minor }, 'mknod');
  }

  async setxattr(path: string, name: string, value: Buffer): Promise<void> {
    await this.must({ op: 'setxattr', path, name, value: value.toString('base64') }, `setxattr ${name}`);
  }

  async getxattrs(path: string): Promise<Record<string, Buffer>> {
    const r = await this.must({ op: 'getxattrs', path }, 'listxattr');
    return Object.fromEntries(Object.entries(r.xattrs ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')]));
  }

  async close(): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    this.rl?.close();
    await new Promise<void>((resolve) => {
      proc.once('exit', () => resolve());
      proc.stdin.end();
    });
    this.proc = null;
  }
}

export const OVERLAY_OPAQUE_XATTR = 'trusted.overlay.opaque';
