// Downloads one blob into blobs/<etag>.incomplete, resuming what is there with a Range
// request, checks the size and the content hash the etag promises (sha256 for LFS files,
// the git blob sha1 for files kept in git), then renames it to blobs/<etag>. A dropped
// connection is retried from where it stopped; a wrong hash deletes the partial file.
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ErrorCode } from '../errors.js';
import { abortError, getFollowing, hubError, httpError, type HubError } from './http.js';

/** How many times a download that stopped mid-way is resumed within one call. */
const MAX_RESUMES = 3;

export type EtagKind = 'sha256' | 'git-sha1' | 'opaque';

/** LFS files' etag is their sha256; git files' etag is their git blob sha1. */
export function etagKind(etag: string): EtagKind {
  if (/^[0-9a-f]{64}$/.test(etag)) return 'sha256';
  if (/^[0-9a-f]{40}$/.test(etag)) return 'git-sha1';
  return 'opaque';
}

async function hashFile(hash: Hash, path: string, end?: number): Promise<void> {
  if (end === 0) return;
  for await (const chunk of createReadStream(path, end === undefined ? {} : { end: end - 1 })) hash.update(chunk as Buffer);
}

/** The git blob sha1 of a file: sha1("blob <size>\0" + content). */
async function gitBlobSha1(path: string): Promise<string> {
  const hash = createHash('sha1').update(`blob ${(await stat(path)).size}\0`);
  await hashFile(hash, path);
  return hash.digest('hex');
}

export interface BlobDownload {
  /** Repository file name, for messages and progress. */
  file: string;
  url: string;
  hubOrigin: string;
  headers: Record<string, string>;
  etag: string;
  size: number | null;
  incompletePath: string;
  blobPath: string;
  signal?: AbortSignal;
  /** A response that sends nothing for this long counts as dropped (and is resumed). */
  idleMs: number;
  onBytes: (bytes: number, total: number | null) => void;
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

/** `Content-Range: bytes <start>-<end>/<total>` → start (null when absent or malformed). */
function rangeStart(res: Response): number | null {
  const m = /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(res.headers.get('content-range')?.trim() ?? '');
  return m ? Number(m[1]) : null;
}

/**
 * One GET into the .incomplete file, from its current size. Resolves when the body ended;
 * throws a FileIO error (with `url`, no `status`) when the connection dropped or went idle.
 */
async function fetchInto(d: BlobDownload, sha256: { hash: Hash | null }, transfer: { received: number }): Promise<void> {
  let offset = await sizeOf(d.incompletePath);
  if (d.size !== null && offset > d.size) offset = 0; // longer than the file: not ours, start over
  const idle = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => idle.abort(), d.idleMs);
  };
  const signal = d.signal ? AbortSignal.any([idle.signal, d.signal]) : idle.signal;
  const get = (from: number) =>
    getFollowing(d.url, d.hubOrigin, {
      headers: { ...d.headers, 'Accept-Encoding': 'identity', ...(from > 0 ? { Range: `bytes=${from}-` } : {}) },
      signal,
    });
  let url = d.url;
  let bytes = offset;
  const interrupted = (err: unknown) => {
    if (d.signal?.aborted) return abortError(d.signal);
    if (!idle.signal.aborted && (err as HubError).code !== ErrorCode.Aborted) return err;
    return hubError(`${d.file}: download interrupted after ${bytes} bytes (no data for ${d.idleMs / 1000} s) [${url}]`, ErrorCode.FileIO, { url });
  };
  try {
    arm();
    let res: Response;
    try {
      ({ res, url } = await get(offset));
      if (res.status === 416 && offset > 0) {
        // The server cannot serve that range (the partial file is stale): start over.
        await res.body?.cancel();
        ({ res, url } = await get((offset = 0)));
      }
    } catch (err) {
      throw interrupted(err);
    }
    if (res.status !== 200 && res.status !== 206) {
      await res.body?.cancel();
      throw httpError(res, url, d.file, 'Authorization' in d.headers);
    }
    if (res.status === 200) offset = 0; // the whole file follows, not the asked-for range
    else if ((rangeStart(res) ?? offset) !== offset) {
      await res.body?.cancel();
      throw hubError(`${d.file}: asked to resume from byte ${offset}, the server sent ${res.headers.get('content-range')} [${url}]`, ErrorCode.FileIO, { url, status: 206 });
    }
    if (sha256.hash) {
      // Re-read the part already on disk (the idle clock stops meanwhile: a big prefix takes a while).
      clearTimeout(timer);
      sha256.hash = createHash('sha256');
      await hashFile(sha256.hash, d.incompletePath, offset);
      arm();
    }
    bytes = offset;
    const fh = await open(d.incompletePath, offset === 0 ? 'w' : 'r+');
    try {
      d.onBytes(bytes, d.size);
      if (res.body) {
        for await (const chunk of res.body) {
          arm();
          const buf = chunk as Uint8Array;
          await fh.write(buf, 0, buf.length, bytes);
          sha256.hash?.update(buf);
          bytes += buf.length;
          transfer.received += buf.length;
          d.onBytes(bytes, d.size);
        }
      }
    } catch (err) {
      const e = interrupted(err);
      if (e !== err) throw e;
      const why = (err as { cause?: Error }).cause?.message ?? (err as Error).message;
      throw hubError(`${d.file}: download interrupted after ${bytes} bytes (${why}) [${url}]`, ErrorCode.FileIO, { url, cause: err });
    } finally {
      await fh.truncate(bytes).catch(() => {});
      await fh.close();
    }
  } finally {
    clearTimeout(timer);
  }
}

/** The hash the etag promises, of the file at `path` (null for an opaque etag). */
async function contentHash(kind: EtagKind, path: string): Promise<string | null> {
  if (kind === 'git-sha1') return gitBlobSha1(path);
  if (kind === 'opaque') return null;
  const hash = createHash('sha256');
  await hashFile(hash, path);
  return hash.digest('hex');
}

/** Downloads and verifies the blob; resolves once blobs/<etag> is in place. */
export async function downloadBlob(d: BlobDownload): Promise<void> {
  await mkdir(dirname(d.incompletePath), { recursive: true });
  const kind = etagKind(d.etag);
  // A complete .incomplete (a crash before the rename) only needs checking.
  if (d.size !== null && d.size > 0 && (await sizeOf(d.incompletePath)) === d.size) {
    if ((await contentHash(kind, d.incompletePath)) === (kind === 'opaque' ? null : d.etag)) return rename(d.incompletePath, d.blobPath);
    await unlink(d.incompletePath);
  }
  const sha256 = { hash: kind === 'sha256' ? createHash('sha256') : null };
  for (let attempt = 0; ; attempt++) {
    const transfer = { received: 0 };
    try {
      await fetchInto(d, sha256, transfer);
    } catch (err) {
      // Resume only a transfer that made progress; HTTP errors and aborts are final.
      const e = err as HubError;
      if (e.code !== ErrorCode.FileIO || e.status !== undefined || transfer.received === 0 || attempt >= MAX_RESUMES) throw err;
      continue;
    }
    const got = await sizeOf(d.incompletePath);
    if (d.size !== null && got < d.size && transfer.received > 0 && attempt < MAX_RESUMES) continue; // ended early: resume
    if (d.size !== null && got !== d.size) {
      await unlink(d.incompletePath).catch(() => {});
      throw hubError(`${d.file}: downloaded ${got} bytes, the hub said ${d.size}; the partial file was removed, run again`, ErrorCode.FileFormat, { url: d.url });
    }
    break;
  }
  const actual = kind === 'sha256' ? sha256.hash!.digest('hex') : await contentHash(kind, d.incompletePath);
  if (actual !== null && actual !== d.etag) {
    await unlink(d.incompletePath).catch(() => {});
    const algo = kind === 'sha256' ? 'sha256' : 'git blob sha1';
    throw hubError(
      `${d.file}: checksum mismatch, expected ${algo} ${d.etag} (the hub's ETag) but the download has ${actual}; the partial file was removed, run again`,
      ErrorCode.FileFormat,
      { url: d.url },
    );
  }
  await rename(d.incompletePath, d.blobPath);
}
