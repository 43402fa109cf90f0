// The Hugging Face cache layout (huggingface_hub's "how-to-cache" docs), shared with Python:
//   <cache>/models--<owner>--<name>/blobs/<etag>               file content (.incomplete while downloading)
//                                  /snapshots/<commit>/<file>  relative symlink to ../../blobs/<etag>
//                                  /refs/<revision>            the commit hash a branch or tag pointed to
//                                  /.no_exist/<commit>/<file>  empty: the file is known not to exist
//   <cache>/.locks/models--<owner>--<name>/<etag>.node.lock    while a blob is being written
import { readFileSync, readlinkSync, statSync } from 'node:fs';
import { mkdir, readlink, rename, symlink, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import { ErrorCode, withCode } from '../errors.js';
import { COMMIT_HASH, isPlainFileName } from './settings.js';

export class RepoCache {
  readonly folderName: string;
  readonly dir: string;

  constructor(
    readonly cacheDir: string,
    readonly repoId: string,
  ) {
    this.folderName = `models--${repoId.replaceAll('/', '--')}`;
    this.dir = join(cacheDir, this.folderName);
  }

  blobPath(etag: string): string {
    return join(this.dir, 'blobs', etag);
  }
  lockPath(etag: string): string {
    return join(this.cacheDir, '.locks', this.folderName, `${etag}.node.lock`);
  }
  snapshotDir(commit: string): string {
    return join(this.dir, 'snapshots', commit);
  }
  snapshotFile(commit: string, file: string): string {
    return join(this.snapshotDir(commit), file);
  }

  /** The commit refs/<revision> holds, or the revision itself when it is a commit hash. */
  commitFor(revision: string): string | null {
    if (COMMIT_HASH.test(revision)) return revision;
    try {
      const c = readFileSync(join(this.dir, 'refs', revision), 'utf8').trim();
      return COMMIT_HASH.test(c) ? c : null;
    } catch {
      return null;
    }
  }

  async writeRef(revision: string, commit: string): Promise<void> {
    if (revision === commit || this.commitFor(revision) === commit) return;
    const path = join(this.dir, 'refs', revision);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, commit);
  }

  /** Records that `file` does not exist at `commit`, as huggingface_hub does for 404s. */
  async markMissing(commit: string, file: string): Promise<void> {
    const path = join(this.dir, '.no_exist', commit, file);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, '');
  }

  /** snapshots/<commit>/<file> -> ../../blobs/<etag> (relative, so the cache can move). */
  async link(commit: string, file: string, etag: string): Promise<void> {
    const dst = this.snapshotFile(commit, file);
    const target = relative(dirname(dst), this.blobPath(etag));
    const current = await readlink(dst).catch(() => null);
    if (current === target) return;
    await mkdir(dirname(dst), { recursive: true });
    // Made under a temporary name, then renamed over dst: readers never see it missing.
    const tmp = `${dst}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    await symlink(target, tmp);
    try {
      await rename(tmp, dst);
    } catch (err) {
      await unlink(tmp).catch(() => {});
      throw err;
    }
  }

  /** The etag a snapshot entry points to (its blob's name), when it is a symlink. */
  etagOf(commit: string, file: string): string | null {
    try {
      return basename(readlinkSync(this.snapshotFile(commit, file)));
    } catch {
      return null;
    }
  }
}

/** True when the path exists and is a readable file (a dangling symlink is not). */
export function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/**
 * The shard file names of a model.safetensors.index.json. The index comes from the server:
 * it must be an object with a non-empty weight_map of tensor -> plain file name.
 */
export function shardNames(indexText: string, what: string): string[] {
  let index: unknown;
  try {
    index = JSON.parse(indexText);
  } catch (err) {
    throw withCode(new Error(`${what}: invalid JSON (${(err as Error).message})`), ErrorCode.FileFormat);
  }
  const map = (index as { weight_map?: unknown } | null)?.weight_map;
  if (map === null || typeof map !== 'object' || Array.isArray(map)) throw withCode(new Error(`${what}: weight_map must be an object`), ErrorCode.FileFormat);
  const names = new Set<string>();
  for (const [tensor, shard] of Object.entries(map as Record<string, unknown>)) {
    if (!isPlainFileName(shard)) {
      throw withCode(new Error(`${what}: weight_map gives tensor '${tensor}' the shard '${String(shard)}', which is not a plain file name`), ErrorCode.FileFormat);
    }
    names.add(shard);
  }
  if (names.size === 0) throw withCode(new Error(`${what}: weight_map is empty`), ErrorCode.FileFormat);
  return [...names];
}

/** The weight files a snapshot folder needs: model.safetensors, or the index and its shards. */
export function weightFilesIn(snapshot: string): string[] | null {
  if (isFile(join(snapshot, 'model.safetensors'))) return ['model.safetensors'];
  const index = join(snapshot, 'model.safetensors.index.json');
  if (!isFile(index)) return null;
  try {
    const shards = shardNames(readFileSync(index, 'utf8'), index);
    return shards.every((s) => isFile(join(snapshot, s))) ? ['model.safetensors.index.json', ...shards] : null;
  } catch {
    return null;
  }
}
