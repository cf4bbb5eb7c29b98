/**
 * The container service's index: the live records by ID and the names that point at them
 * ("/name" → ID, reserved at create before the record exists). Lookup follows dockerd's
 * GetContainer order: full ID, then name, then a unique ID prefix.
 */
import { parseRfc3339Nano } from './clock.js';
import { ConflictError, InvalidParameterError, noSuchContainer } from './errors.js';
import { generateId, generateName } from './ids.js';
import type { ContainerRecord } from './types.js';

export class NameIndex {
  private readonly records = new Map<string, ContainerRecord>();
  private readonly names = new Map<string, string>();

  /** The live record for a full ID, a name ("/x" or "x") or a unique ID prefix; 404 otherwise. */
  resolve(idOrName: string): ContainerRecord {
    if (typeof idOrName !== 'string' || idOrName === '') throw noSuchContainer(String(idOrName ?? ''));
    const byId = this.records.get(idOrName);
    if (byId) return byId;
    const nameId = this.names.get(idOrName.startsWith('/') ? idOrName : `/${idOrName}`);
    const byName = nameId === undefined ? undefined : this.records.get(nameId);
    if (byName) return byName;
    if (/^[0-9a-f]+$/.test(idOrName)) {
      let found: ContainerRecord | undefined;
      for (const [id, r] of this.records) {
        if (!id.startsWith(idOrName)) continue;
        if (found) throw new InvalidParameterError(`multiple IDs found with provided prefix: ${idOrName}`);
        found = r;
      }
      if (found) return found;
    }
    throw noSuchContainer(idOrName);
  }

  /** The live record of a full ID, if the index has it. */
  byId(id: string): ContainerRecord | undefined {
    return this.records.get(id);
  }

  has(id: string): boolean {
    return this.records.has(id);
  }

  /** The live records, in no particular order. */
  all(): ContainerRecord[] {
    return [...this.records.values()];
  }

  /**
   * The records `keep` accepts (all without it), newest first (like `docker ps -a`; equal
   * times by ID, descending), each passed through `view` — a copy by default. `keep` and
   * `view` see the live records, so a filtered list copies only its matches and a view that
   * builds its own answer (the API's ContainerSummary) copies no record at all; each Created
   * is parsed once, not per comparison.
   */
  listNewestFirst<T = ContainerRecord>(keep?: (r: Readonly<ContainerRecord>) => boolean, view?: (r: Readonly<ContainerRecord>) => T): T[] {
    // By time, not by string: RFC3339Nano trims trailing zeros, so text order is not time order.
    const keyed = this.all()
      .filter((r) => !keep || keep(r))
      .map((r) => ({ r, t: parseRfc3339Nano(r.Created) ?? 0n }));
    keyed.sort((a, b) => (a.t < b.t ? 1 : a.t > b.t ? -1 : a.r.ID < b.r.ID ? 1 : a.r.ID > b.r.ID ? -1 : 0));
    const out = view ?? ((r: Readonly<ContainerRecord>) => structuredClone(r) as T);
    return keyed.map(({ r }) => out(r));
  }

  /** An ID no record has. */
  newId(): string {
    let id = generateId();
    while (this.records.has(id)) id = generateId();
    return id;
  }

  /** A generated "/adjective_name" no container has. */
  newName(): string {
    for (let i = 0; ; i++) {
      const n = `/${generateName(i > 3 ? i : 0)}`;
      if (!this.names.has(n)) return n;
    }
  }

  /** Reserve "/name" for `id`, with Docker's conflict message when another container has it. */
  reserveName(name: string, id: string): void {
    const other = this.names.get(name);
    if (other !== undefined && other !== id) {
      throw new ConflictError(
        `Conflict. The container name "${name}" is already in use by container "${other}". You have to remove (or rename) that container to be able to reuse that name.`,
      );
    }
    this.names.set(name, id);
  }

  /** Let go of "/name" if it still points at `id`. */
  releaseName(name: string, id: string): void {
    if (this.names.get(name) === id) this.names.delete(name);
  }

  add(rec: ContainerRecord): void {
    this.records.set(rec.ID, rec);
  }

  /** Forget a record and its name. */
  remove(rec: ContainerRecord): void {
    this.records.delete(rec.ID);
    this.releaseName(rec.Name, rec.ID);
  }

  /**
   * A record read from disk at start-up: indexed under its name, or — when an earlier one
   * already has that name — under "<name>_<short ID>" (logged by the caller).
   */
  addLoaded(rec: ContainerRecord): { renamedFrom?: string } {
    let renamedFrom: string | undefined;
    if (this.names.has(rec.Name)) {
      renamedFrom = rec.Name;
      rec.Name = `/${rec.Name.replace(/^\//, '')}_${rec.ID.slice(0, 6)}`;
    }
    this.records.set(rec.ID, rec);
    this.names.set(rec.Name, rec.ID);
    return renamedFrom ? { renamedFrom } : {};
  }
}
