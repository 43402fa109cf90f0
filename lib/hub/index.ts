// Hugging Face hub downloads: resolves a hub id ('openai-community/gpt2', 'gpt2') to a local
// folder in the Hugging Face cache layout (HF_HOME/hub/models--owner--name/snapshots/<sha>),
// so files Python's huggingface_hub downloaded are reused and vice versa. Follows
// huggingface_hub's hf_hub_download: HEAD each file for its commit and etag, reuse what the
// cache has, else download the blob (resumable, hash-checked) and link it into the snapshot.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { ErrorCode, withCode } from '../errors.js';
import { isFile, RepoCache, shardNames, weightFilesIn } from './cache.js';
import { downloadBlob, etagKind } from './download.js';
import { fileMetadata, headFollowingSameOrigin, hubError, httpError, isNetworkError } from './http.js';
import { withLock } from './lock.js';
import { checkHubId, checkRevision, COMMIT_HASH, hubSettings, isHubId, isPlainFileName, type HubOverrides, type HubSettings } from './settings.js';

export { hubSettings } from './settings.js';

export interface DownloadProgress {
  /** Repository file being fetched ('model.safetensors'). */
  file: string;
  /** Bytes on disk so far (including a resumed part), and the total when known. */
  bytes: number;
  total: number | null;
  /** Set once, when the file is complete and verified. */
  done: boolean;
  /** With `done`: the file was already in the cache (nothing downloaded). */
  cached?: boolean;
}

export interface ResolveOptions extends HubOverrides {
  /** Branch, tag or commit (default 'main'). */
  revision?: string;
  /** Called as bytes arrive (throttled by the caller if needed). */
  onProgress?: (p: DownloadProgress) => void;
  signal?: AbortSignal;
}

export interface PulledFile {
  name: string;
  size: number;
  /** The hub's ETag: the sha256 of LFS files, the git blob sha1 of the others. */
  etag: string | null;
  /** The content's sha256 when the etag is one (LFS files). */
  sha256: string | null;
  /** True when nothing was downloaded for it. */
  cached: boolean;
}

export interface PullResult {
  repo: string;
  revision: string;
  commit: string;
  /** The snapshot folder: pass it to Model.load. */
  path: string;
  files: PulledFile[];
  /** True when the hub was not asked (HF_HUB_OFFLINE) or could not be reached. */
  fromCacheOnly: boolean;
}

const CONFIG = 'config.json';
const WEIGHTS = 'model.safetensors';
const WEIGHTS_INDEX = 'model.safetensors.index.json';
/** Tokenizer and generation files: fetched when the repo has them. Never pytorch_model.bin. */
const OPTIONAL_FILES = ['vocab.json', 'merges.txt', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json'];

/** True when `s` names an existing local folder (then it is used as is, never downloaded). */
export function isLocalModelDir(s: string): boolean {
  return existsSync(s) && statSync(s).isDirectory();
}

function fileEntry(cache: RepoCache, commit: string, name: string, etag: string | null, cached: boolean): PulledFile {
  return {
    name,
    size: statSync(cache.snapshotFile(commit, name)).size,
    etag,
    sha256: etag !== null && etagKind(etag) === 'sha256' ? etag : null,
    cached,
  };
}

/** The snapshot the cache holds for `revision`, when it is complete; else an error saying what is missing. */
function fromCache(cache: RepoCache, revision: string, why: string): PullResult {
  const where = `${cache.repoId}@${revision}`;
  const commit = cache.commitFor(revision);
  if (commit === null) {
    throw hubError(`${where}: not in the Hugging Face cache (no ${cache.dir}/refs/${revision}) and ${why}`, ErrorCode.FileIO);
  }
  const snapshot = cache.snapshotDir(commit);
  if (!isFile(cache.snapshotFile(commit, CONFIG))) {
    throw hubError(`${where}: ${CONFIG} is not in the cached snapshot ${snapshot} and ${why}`, ErrorCode.FileIO);
  }
  const weights = weightFilesIn(snapshot);
  if (weights === null) {
    throw hubError(`${where}: ${WEIGHTS} (or ${WEIGHTS_INDEX} and all its shards) is not in the cached snapshot ${snapshot} and ${why}`, ErrorCode.FileIO);
  }
  const names = [CONFIG, ...weights, ...OPTIONAL_FILES.filter((f) => isFile(cache.snapshotFile(commit, f)))];
  return {
    repo: cache.repoId,
    revision,
    commit,
    path: snapshot,
    files: names.map((n) => fileEntry(cache, commit, n, cache.etagOf(commit, n), true)),
    fromCacheOnly: true,
  };
}

/** One pull: the settings, the repo's cache folder and the request headers. */
class Pull {
  readonly headers: Record<string, string>;
  readonly hubOrigin: string;

  constructor(
    readonly settings: HubSettings,
    readonly cache: RepoCache,
    readonly opts: ResolveOptions,
  ) {
    this.headers = { 'User-Agent': `gpt2-node; node/${process.version}` };
    if (settings.token !== null) this.headers.Authorization = `Bearer ${settings.token}`;
    const endpoint = URL.canParse(settings.endpoint) ? new URL(settings.endpoint) : null;
    if (endpoint?.protocol !== 'http:' && endpoint?.protocol !== 'https:') {
      throw withCode(new TypeError(`hub endpoint (HF_ENDPOINT) must be an http(s) URL (got '${settings.endpoint}')`), ErrorCode.InvalidArg);
    }
    this.hubOrigin = endpoint.origin;
  }

  progress(p: DownloadProgress): void {
    this.opts.onProgress?.(p);
  }

  /**
   * HEADs `file` at `revision`; when the snapshot lacks it, links the cached blob or
   * downloads it. Resolves with the commit and the entry, or null for a missing optional file.
   */
  async file(file: string, revision: string, optional: boolean): Promise<{ commit: string; entry: PulledFile } | null> {
    const { cache, settings } = this;
    const what = `${cache.repoId}: ${file}`;
    const resolveUrl = `${settings.endpoint}/${cache.repoId}/resolve/${encodeURIComponent(revision)}/${file}`;
    const { res, url } = await headFollowingSameOrigin(resolveUrl, {
      headers: { ...this.headers, 'Accept-Encoding': 'identity' },
      signal: this.opts.signal,
      timeoutMs: settings.etagTimeoutMs,
    });
    const commit = res.headers.get('x-repo-commit');
    if (res.status === 404 && optional) {
      if (commit !== null && COMMIT_HASH.test(commit)) await cache.markMissing(commit, file);
      return null;
    }
    if (res.status >= 400) throw httpError(res, url, what, settings.token !== null);
    const meta = fileMetadata(res, url);
    if (meta.commit === null || !COMMIT_HASH.test(meta.commit)) {
      throw hubError(`${what}: the server sent no commit hash (X-Repo-Commit) [${url}]: is HF_ENDPOINT (${settings.endpoint}) a Hugging Face hub?`, ErrorCode.FileIO, { url });
    }
    if (meta.etag === null || !isPlainFileName(meta.etag)) {
      throw hubError(`${what}: the server sent no usable ETag ('${meta.etag ?? ''}') [${url}]`, ErrorCode.FileIO, { url });
    }
    const { etag } = meta;
    const c = meta.commit;
    if (COMMIT_HASH.test(revision) && c !== revision) {
      throw hubError(`${what}: asked for commit ${revision}, the server answered for commit ${c} [${url}]`, ErrorCode.FileIO, { url });
    }
    const done = (cached: boolean) => {
      const entry = fileEntry(cache, c, file, etag, cached);
      this.progress({ file, bytes: entry.size, total: entry.size, done: true, cached });
      return { commit: c, entry };
    };
    // Already in the snapshot (maybe from Python): reuse it, as hf_hub_download does.
    if (isFile(cache.snapshotFile(c, file))) return done(true);
    const blob = cache.blobPath(etag);
    if (isFile(blob)) {
      await cache.link(c, file, etag);
      return done(true);
    }
    const downloaded = await withLock(
      cache.lockPath(etag),
      async () => {
        if (isFile(blob)) return false; // another process finished it while we waited
        await downloadBlob({
          file,
          url: meta.location,
          hubOrigin: this.hubOrigin,
          headers: this.headers,
          etag,
          size: meta.size,
          incompletePath: `${blob}.incomplete`,
          blobPath: blob,
          signal: this.opts.signal,
          idleMs: settings.downloadTimeoutMs,
          onBytes: (bytes, total) => this.progress({ file, bytes, total, done: false }),
        });
        return true;
      },
      this.opts.signal,
    );
    await cache.link(c, file, etag);
    return done(!downloaded);
  }
}

/**
 * Downloads (or finds in the cache) config.json, the safetensors weights (single or sharded)
 * and the tokenizer files of a hub model; resolves with the snapshot folder and what was fetched.
 */
export async function pullModel(repoId: string, opts: ResolveOptions = {}): Promise<PullResult> {
  checkHubId(repoId, 'pull');
  const revision = checkRevision(opts.revision ?? 'main', `pull ${repoId}`);
  const settings = hubSettings(opts);
  const cache = new RepoCache(settings.cacheDir, repoId);
  if (settings.offline) return fromCache(cache, revision, 'offline mode is on (HF_HUB_OFFLINE): unset it to download');

  const pull = new Pull(settings, cache, opts);
  let first: Awaited<ReturnType<Pull['file']>>;
  try {
    first = await pull.file(CONFIG, revision, false);
  } catch (err) {
    // The hub cannot be reached: a complete cached snapshot will do (huggingface_hub does the same).
    if (!isNetworkError(err)) throw err;
    try {
      return fromCache(cache, revision, `the hub cannot be reached (${(err as Error).message})`);
    } catch {
      throw err;
    }
  }
  const { commit } = first!;
  // Every other file at the commit config.json came from, so a push in between cannot mix versions.
  const files: PulledFile[] = [first!.entry];
  const weights = await pull.file(WEIGHTS, commit, true);
  if (weights) files.push(weights.entry);
  else {
    const index = await pull.file(WEIGHTS_INDEX, commit, true);
    if (!index) {
      throw hubError(`${repoId}@${revision}: no ${WEIGHTS} or ${WEIGHTS_INDEX} in the repository (pytorch_model.bin is not supported)`, ErrorCode.FileIO);
    }
    files.push(index.entry);
    const indexPath = cache.snapshotFile(commit, WEIGHTS_INDEX);
    for (const shard of shardNames(readFileSync(indexPath, 'utf8'), `${repoId}: ${WEIGHTS_INDEX}`)) {
      const s = await pull.file(shard, commit, false);
      files.push(s!.entry);
    }
  }
  for (const name of OPTIONAL_FILES) {
    const f = await pull.file(name, commit, true);
    if (f) files.push(f.entry);
  }
  await cache.writeRef(revision, commit);
  return { repo: repoId, revision, commit, path: cache.snapshotDir(commit), files, fromCacheOnly: false };
}

/**
 * A local folder as is; otherwise a hub id, downloaded (or found) in the cache.
 * Resolves with the folder holding config.json, the weights and tokenizer files.
 */
export async function resolveModel(idOrDir: string, opts: ResolveOptions = {}): Promise<string> {
  if (typeof idOrDir === 'string' && isLocalModelDir(idOrDir)) return idOrDir;
  checkHubId(idOrDir, 'model', true);
  return (await pullModel(idOrDir, opts)).path;
}

/**
 * The folder to load for a model argument: the argument itself when it is a folder or not a
 * hub id ('./x', '/abs/path': the loader then names the missing folder), else the hub id's snapshot.
 */
export async function modelDirFor(dirOrHubId: string, opts: ResolveOptions = {}): Promise<string> {
  return isLocalModelDir(dirOrHubId) || !isHubId(dirOrHubId) ? dirOrHubId : (await pullModel(dirOrHubId, opts)).path;
}
