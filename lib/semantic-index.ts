// SemanticIndex: vectors (or texts embedded by a Model) with ids and metadata, searched by
// cosine similarity. Vectors are stored L2-normalised in one contiguous row-major
// Float32Array, so a search is one pass of dot products (native, AVX2 where present,
// native/cpu/similarity*.cc) and a top-k; searches over large indexes run off the event
// loop. save()/load() use a small binary file (format in docs/ARCHITECTURE.md), validated
// field by field and checksummed (SHA-256) on load.
import { randomBytes, webcrypto } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';

import type { EmbedOptions } from './embed.js';
import { ErrorCode, withCode } from './errors.js';
import type { Model } from './model.js';
import { native } from './native.js';
import { checkOptions, describe } from './options.js';

interface IndexBinding {
  similaritySearch(matrix: Float32Array, rows: number, dim: number, query: Float32Array, k: number, async: false): SearchRows;
  similaritySearch(matrix: Float32Array, rows: number, dim: number, query: Float32Array, k: number, async: true): Promise<SearchRows>;
}
interface SearchRows { rows: Uint32Array; scores: Float32Array }
const binding = native as unknown as IndexBinding;

export interface SemanticIndexOptions {
  /** Embeds texts for addTexts() and string queries. */
  model?: Model;
  /** Options for model.embed (normalize is always on). */
  embed?: Omit<EmbedOptions, 'normalize'>;
  /** Vector width; default: the model's n_embd, else the first vector added. */
  dim?: number;
}

export interface SearchOptions<M> {
  /** How many hits (default 10). */
  k?: number;
  /** Drop hits scoring below this cosine similarity. */
  minScore?: number;
  /** Keep only entries this accepts (applied after scoring, before taking k). */
  filter?: (id: string, metadata: M | undefined) => boolean;
}

export interface SearchHit<M> {
  id: string;
  /** Cosine similarity, -1 ... 1. */
  score: number;
  metadata: M | undefined;
}

/** Searches over more floats than this run off the event loop. */
const ASYNC_FLOATS = 1 << 18;
const MAGIC = 'GPT2NIDX';
const VERSION = 1;
const HEADER_BYTES = 32;
const CHECKSUM_BYTES = 32;
const MAX_DIM = 1 << 16;

function formatError(path: string, what: string): Error {
  return withCode(new Error(`SemanticIndex.load: ${path} is not a valid index file: ${what}`), ErrorCode.FileFormat);
}

async function sha256(bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await webcrypto.subtle.digest('SHA-256', bytes));
}

export class SemanticIndex<M = unknown> {
  #model: Model | undefined;
  #embed: Omit<EmbedOptions, 'normalize'>;
  #dim: number;
  #matrix = new Float32Array(0);
  #ids: string[] = [];
  #metadata: (M | undefined)[] = [];
  #rows = new Map<string, number>();
  #readers = 0;  // running searches reading #matrix / #ids / #metadata: copy them before writing

  constructor(opts?: SemanticIndexOptions) {
    const o = checkOptions(opts, ['model', 'embed', 'dim'], 'SemanticIndex');
    this.#model = o.model as Model | undefined;
    this.#embed = (o.embed ?? {}) as Omit<EmbedOptions, 'normalize'>;
    if (this.#embed && 'normalize' in this.#embed) {
      throw withCode(new TypeError('SemanticIndex: embed.normalize is always true here'), ErrorCode.InvalidArg);
    }
    const dim = o.dim ?? this.#model?.config.n_embd ?? 0;
    if (typeof dim !== 'number' || !Number.isInteger(dim) || dim < 0 || dim > MAX_DIM) {
      throw withCode(new RangeError(`SemanticIndex: dim must be an integer 1 ... ${MAX_DIM} (got ${describe(dim)})`), ErrorCode.OutOfRange);
    }
    if (this.#model && o.dim !== undefined && dim !== this.#model.config.n_embd) {
      throw withCode(new RangeError(`SemanticIndex: dim ${dim} differs from the model's n_embd ${this.#model.config.n_embd}`), ErrorCode.OutOfRange);
    }
    this.#dim = dim;
  }

  /** Number of entries. */
  get size(): number {
    return this.#ids.length;
  }
  /** Vector width (0 until known). */
  get dim(): number {
    return this.#dim;
  }
  /** The ids, in storage order. */
  ids(): string[] {
    return this.#ids.slice();
  }
  has(id: string): boolean {
    return this.#rows.has(id);
  }
  /** The stored (unit-length) vector and metadata of an id. */
  get(id: string): { vector: Float32Array; metadata: M | undefined } | undefined {
    const r = this.#rows.get(id);
    if (r === undefined) return undefined;
    return { vector: this.#matrix.slice(r * this.#dim, (r + 1) * this.#dim), metadata: this.#metadata[r] };
  }

  /** Adds (or replaces) an entry. The vector is stored normalised; a zero vector is an error. */
  add(id: string, vector: ArrayLike<number>, metadata?: M): void {
    this.addMany([{ id, vector, metadata }]);
  }

  /** Adds (or replaces) several entries; all are checked before any is added. */
  addMany(items: readonly { id: string; vector: ArrayLike<number>; metadata?: M }[]): void {
    if (!Array.isArray(items)) throw withCode(new TypeError('SemanticIndex.addMany: items must be an array'), ErrorCode.InvalidArg);
    const units = items.map((it, i) => {
      const where = `SemanticIndex.add: item ${i}`;
      if (it === null || typeof it !== 'object') throw withCode(new TypeError(`${where} must be an object`), ErrorCode.InvalidArg);
      if (typeof it.id !== 'string' || it.id.length === 0) {
        throw withCode(new TypeError(`${where}: id must be a non-empty string (got ${describe(it.id)})`), ErrorCode.InvalidArg);
      }
      return this.#unit(it.vector, where, this.#dim);
    });
    if (items.length === 0) return;
    if (this.#dim === 0) this.#dim = units[0]!.length;
    units.forEach((u, i) => {
      if (u.length !== this.#dim) {
        throw withCode(new RangeError(`SemanticIndex.add: item ${i} has ${u.length} dimensions, the index ${this.#dim}`), ErrorCode.OutOfRange);
      }
    });
    this.#own();
    this.#reserve(this.#ids.length + items.length);
    items.forEach((it, i) => {
      let r = this.#rows.get(it.id);
      if (r === undefined) {
        r = this.#ids.length;
        this.#ids.push(it.id);
        this.#metadata.push(undefined);
        this.#rows.set(it.id, r);
      }
      this.#matrix.set(units[i]!, r * this.#dim);
      this.#metadata[r] = it.metadata;
    });
  }

  /** Embeds texts with the index's model (in one batched call) and adds them. */
  async addTexts(items: readonly { id: string; text: string; metadata?: M }[]): Promise<void> {
    const model = this.#needModel('addTexts');
    if (!Array.isArray(items)) throw withCode(new TypeError('SemanticIndex.addTexts: items must be an array'), ErrorCode.InvalidArg);
    items.forEach((it, i) => {
      if (it === null || typeof it !== 'object' || typeof it.id !== 'string' || it.id.length === 0) {
        throw withCode(new TypeError(`SemanticIndex.addTexts: item ${i} needs a non-empty string id`), ErrorCode.InvalidArg);
      }
    });
    if (items.length === 0) return;
    const vectors = await model.embed(items.map((it) => it.text), { ...this.#embed, normalize: true });
    this.addMany(items.map((it, i) => ({ id: it.id, vector: vectors[i]!, metadata: it.metadata })));
  }

  /** Removes an entry; false when the id is not there. */
  remove(id: string): boolean {
    const r = this.#rows.get(id);
    if (r === undefined) return false;
    this.#own();
    const last = this.#ids.length - 1;
    if (r !== last) {
      // The last row moves into the hole.
      this.#matrix.copyWithin(r * this.#dim, last * this.#dim, (last + 1) * this.#dim);
      this.#ids[r] = this.#ids[last]!;
      this.#metadata[r] = this.#metadata[last];
      this.#rows.set(this.#ids[r]!, r);
    }
    this.#ids.pop();
    this.#metadata.pop();
    this.#rows.delete(id);
    return true;
  }

  /** The k entries most similar (cosine) to a vector, or to a text embedded by the model. */
  async search(query: string | ArrayLike<number>, opts?: SearchOptions<M>): Promise<SearchHit<M>[]> {
    const o = checkOptions(opts, ['k', 'minScore', 'filter'], 'SemanticIndex.search');
    const k = o.k ?? 10;
    if (typeof k !== 'number' || !Number.isInteger(k) || k < 1) {
      throw withCode(new RangeError(`SemanticIndex.search: k must be a positive integer (got ${describe(k)})`), ErrorCode.OutOfRange);
    }
    if (o.minScore !== undefined && (typeof o.minScore !== 'number' || Number.isNaN(o.minScore))) {
      throw withCode(new TypeError('SemanticIndex.search: minScore must be a number'), ErrorCode.InvalidArg);
    }
    if (o.filter !== undefined && typeof o.filter !== 'function') {
      throw withCode(new TypeError('SemanticIndex.search: filter must be a function'), ErrorCode.InvalidArg);
    }
    let q: Float32Array;
    if (typeof query === 'string') {
      const model = this.#needModel('search');
      q = (await model.embed([query], { ...this.#embed, normalize: true }))[0]!;
    } else {
      q = this.#unit(query, 'SemanticIndex.search: query', this.#dim);
    }
    const n = this.#ids.length;
    if (n === 0) return [];
    if (q.length !== this.#dim) {
      throw withCode(new RangeError(`SemanticIndex.search: the query has ${q.length} dimensions, the index ${this.#dim}`), ErrorCode.OutOfRange);
    }
    const filter = o.filter as SearchOptions<M>['filter'];
    // With a filter, score everything and filter before taking k.
    const want = Math.min(n, filter ? n : k);
    const ids = this.#ids, metadata = this.#metadata;
    let found: SearchRows;
    if (n * this.#dim < ASYNC_FLOATS) {
      found = binding.similaritySearch(this.#matrix, n, this.#dim, q, want, false);
    } else {
      // The arrays stay as they are while this search reads them (#own copies on write).
      const matrix = this.#matrix;
      this.#readers++;
      try {
        found = await binding.similaritySearch(matrix, n, this.#dim, q, want, true);
      } finally {
        if (this.#matrix === matrix) this.#readers--;
      }
    }
    const hits: SearchHit<M>[] = [];
    for (let i = 0; i < found.rows.length && hits.length < k; i++) {
      const r = found.rows[i]!, score = found.scores[i]!;
      if (o.minScore !== undefined && score < (o.minScore as number)) break;
      if (filter && !filter(ids[r]!, metadata[r])) continue;
      hits.push({ id: ids[r]!, score, metadata: metadata[r] });
    }
    return hits;
  }

  /** Writes the index to a file (atomically: a temporary file, then rename). */
  async save(path: string): Promise<void> {
    if (typeof path !== 'string' || path.length === 0) {
      throw withCode(new TypeError('SemanticIndex.save: path must be a non-empty string'), ErrorCode.InvalidArg);
    }
    const n = this.#ids.length, dim = this.#dim;
    let json: Buffer;
    try {
      json = Buffer.from(JSON.stringify({ ids: this.#ids, metadata: this.#metadata.map((m) => m ?? null), embed: this.#embed }), 'utf8');
    } catch (e) {
      throw withCode(new TypeError(`SemanticIndex.save: metadata must be JSON-serialisable (${(e as Error).message})`), ErrorCode.InvalidArg);
    }
    const vectorBytes = n * dim * 4;
    const body = Buffer.alloc(HEADER_BYTES + vectorBytes + json.length + CHECKSUM_BYTES);
    body.write(MAGIC, 0, 'latin1');
    body.writeUInt32LE(VERSION, 8);
    body.writeUInt32LE(dim, 12);
    body.writeBigUInt64LE(BigInt(n), 16);
    body.writeBigUInt64LE(BigInt(json.length), 24);
    new Uint8Array(body.buffer, body.byteOffset + HEADER_BYTES, vectorBytes)
      .set(new Uint8Array(this.#matrix.buffer, this.#matrix.byteOffset, vectorBytes));
    json.copy(body, HEADER_BYTES + vectorBytes);
    const end = body.length - CHECKSUM_BYTES;
    body.set(await sha256(body.subarray(0, end)), end);
    const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      await writeFile(tmp, body);
      await rename(tmp, path);
    } catch (e) {
      await rm(tmp, { force: true }).catch(() => undefined);
      throw withCode(new Error(`SemanticIndex.save: cannot write ${path}: ${(e as Error).message}`), ErrorCode.FileIO);
    }
  }

  /**
   * Reads an index written by save(). Every field is checked (magic, version, sizes,
   * SHA-256 checksum, ids, finite vectors): a damaged file is an Error with code
   * ERR_GPT2_FILE_FORMAT, an unreadable one ERR_GPT2_FILE_IO.
   */
  static async load<M = unknown>(path: string, opts?: Omit<SemanticIndexOptions, 'dim'>): Promise<SemanticIndex<M>> {
    if (typeof path !== 'string' || path.length === 0) {
      throw withCode(new TypeError('SemanticIndex.load: path must be a non-empty string'), ErrorCode.InvalidArg);
    }
    const o = checkOptions(opts, ['model', 'embed'], 'SemanticIndex.load');
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (e) {
      throw withCode(new Error(`SemanticIndex.load: cannot read ${path}: ${(e as Error).message}`), ErrorCode.FileIO);
    }
    if (bytes.length < HEADER_BYTES + CHECKSUM_BYTES) throw formatError(path, `${bytes.length} bytes is too short`);
    if (bytes.toString('latin1', 0, 8) !== MAGIC) throw formatError(path, 'wrong magic (not a gpt2-node index)');
    const version = bytes.readUInt32LE(8);
    if (version !== VERSION) throw formatError(path, `unsupported version ${version} (this reader knows ${VERSION})`);
    const dim = bytes.readUInt32LE(12);
    const count = bytes.readBigUInt64LE(16), jsonBytes = bytes.readBigUInt64LE(24);
    if (dim < 1 || dim > MAX_DIM) throw formatError(path, `dim ${dim} is out of range`);
    const expected = BigInt(HEADER_BYTES) + count * BigInt(dim) * 4n + jsonBytes + BigInt(CHECKSUM_BYTES);
    if (expected !== BigInt(bytes.length)) {
      throw formatError(path, `sizes in the header (${count} vectors of ${dim}, ${jsonBytes} bytes of ids) need ${expected} bytes, the file has ${bytes.length}`);
    }
    const end = bytes.length - CHECKSUM_BYTES;
    if (!Buffer.from(await sha256(bytes.subarray(0, end))).equals(bytes.subarray(end))) throw formatError(path, 'checksum mismatch');
    const n = Number(count), vectorBytes = n * dim * 4;
    let meta: { ids?: unknown; metadata?: unknown; embed?: unknown };
    try {
      meta = JSON.parse(bytes.toString('utf8', HEADER_BYTES + vectorBytes, end));
    } catch {
      throw formatError(path, 'the ids section is not JSON');
    }
    if (meta === null || typeof meta !== 'object' || !Array.isArray(meta.ids) || !Array.isArray(meta.metadata) ||
        meta.ids.length !== n || meta.metadata.length !== n) {
      throw formatError(path, `the ids section must hold ${n} ids and ${n} metadata entries`);
    }
    const matrix = new Float32Array(n * dim);
    new Uint8Array(matrix.buffer).set(bytes.subarray(HEADER_BYTES, HEADER_BYTES + vectorBytes));
    for (let i = 0; i < matrix.length; i++) if (!Number.isFinite(matrix[i]!)) throw formatError(path, `vector ${Math.floor(i / dim)} is not finite`);
    const rows = new Map<string, number>();
    (meta.ids as unknown[]).forEach((id, r) => {
      if (typeof id !== 'string' || id.length === 0 || rows.has(id)) throw formatError(path, `id ${r} is missing or repeated`);
      rows.set(id, r);
    });
    const model = o.model as Model | undefined;
    const stored = meta.embed ?? {};
    if (stored === null || typeof stored !== 'object' || Array.isArray(stored) || 'normalize' in stored) {
      throw formatError(path, 'the stored embed options are not an options object');
    }
    const embed = (o.embed ?? stored) as SemanticIndexOptions['embed'];
    const index = new SemanticIndex<M>({ model, embed, ...(model ? {} : { dim }) });
    if (model && model.config.n_embd !== dim) {
      throw withCode(new RangeError(`SemanticIndex.load: the index has ${dim} dimensions, the model's n_embd is ${model.config.n_embd}`), ErrorCode.OutOfRange);
    }
    index.#dim = dim;
    index.#matrix = matrix;
    index.#ids = meta.ids as string[];
    index.#metadata = (meta.metadata as (M | null)[]).map((m) => (m === null ? undefined : m));
    index.#rows = rows;
    return index;
  }

  #needModel(what: string): Model {
    if (!this.#model) {
      throw withCode(new TypeError(`SemanticIndex.${what}: texts need a model (new SemanticIndex({ model }))`), ErrorCode.InvalidArg);
    }
    return this.#model;
  }

  /** A finite, non-zero vector of `dim` entries (any when dim is 0), scaled to unit length. */
  #unit(v: ArrayLike<number>, where: string, dim: number): Float32Array {
    if (v === null || typeof v !== 'object' || typeof (v as { length?: unknown }).length !== 'number') {
      throw withCode(new TypeError(`${where}: a vector must be a Float32Array or an array of numbers`), ErrorCode.InvalidArg);
    }
    if (dim > 0 && v.length !== dim) {
      throw withCode(new RangeError(`${where}: ${v.length} dimensions, the index has ${dim}`), ErrorCode.OutOfRange);
    }
    if (v.length === 0 || v.length > MAX_DIM) throw withCode(new RangeError(`${where}: a vector needs 1 ... ${MAX_DIM} dimensions`), ErrorCode.OutOfRange);
    const out = Float32Array.from(v as ArrayLike<number>);
    let ss = 0;
    for (let i = 0; i < out.length; i++) {
      if (!Number.isFinite(out[i]!)) throw withCode(new RangeError(`${where}: entry ${i} is not a finite number`), ErrorCode.OutOfRange);
      ss += out[i]! * out[i]!;
    }
    if (ss === 0) throw withCode(new RangeError(`${where}: a zero vector has no direction`), ErrorCode.OutOfRange);
    const inv = 1 / Math.sqrt(ss);
    for (let i = 0; i < out.length; i++) out[i]! *= inv;
    return out;
  }

  /** Room for `rows` rows (doubling); keeps the current rows. */
  #reserve(rows: number): void {
    if (rows * this.#dim <= this.#matrix.length) return;
    const cap = Math.max(rows, 2 * (this.#matrix.length / Math.max(this.#dim, 1)), 16);
    const next = new Float32Array(cap * this.#dim);
    next.set(this.#matrix.subarray(0, this.#ids.length * this.#dim));
    this.#matrix = next;
  }

  /** Before a write: copies what a running search may still read. */
  #own(): void {
    if (this.#readers === 0) return;
    this.#readers = 0;
    this.#matrix = this.#matrix.slice();
    this.#ids = this.#ids.slice();
    this.#metadata = this.#metadata.slice();
  }
}
