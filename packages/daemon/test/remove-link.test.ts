/**
 * `DELETE /containers/{ref}?link=1` answers as dockerd's ContainerRm with RemoveLink: the
 * reference is resolved like any other (full ID, ID prefix, name, with or without '/'); a
 * container reference that is not a link (no parent) is refused with the "default link name"
 * conflict, and the container stays; an unknown reference is 404 with the name as given.
 */
import { describe, expect, it } from 'vitest';
import { FakeRuntime } from '@berth/testing';
import { engineApp } from './helpers/engine-app.js';

describe('DELETE ?link=1 on a container reference', () => {
  const app = engineApp();

  it('by full ID, ID prefix, name and /name: 409 "cannot remove the default link name", the container stays', async () => {
    const { t, inj } = await app.open({ runtime: new FakeRuntime({ script: { runFor: 60_000 } }) });
    const c = await inj.request({ method: 'POST', url: '/v1.44/containers/create?name=db', body: { Image: 'none', Cmd: ['/bin/sleep'], Labels: { 'io.berth.rootfs': t.rootfs } } });
    expect(c.statusCode, c.text).toBe(201);
    const id = c.json().Id as string;
    for (const ref of [id, id.slice(0, 12), 'db', '%2Fdb']) {
      const r = await inj.request({ method: 'DELETE', url: `/v1.44/containers/${ref}?link=1` });
      expect(r.statusCode, `${ref}: ${r.text}`).toBe(409);
      expect(r.json().message, ref).toBe('Conflict, cannot remove the default link name of the container');
    }
    expect((await inj.request({ url: `/v1.44/containers/${id}/json` })).statusCode).toBe(200);
  });

  it('an unknown reference is 404 with the reference as the client gave it', async () => {
    const { inj } = await app.open();
    const r = await inj.request({ method: 'DELETE', url: '/v1.44/containers/nosuch?link=1' });
    expect(r.statusCode).toBe(404);
    expect(r.json().message).toBe('No such container: nosuch');
  });
});
