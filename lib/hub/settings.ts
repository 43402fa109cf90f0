// Where and how to reach the hub, read the way huggingface_hub reads it (constants.py):
// HF_ENDPOINT, HF_HUB_CACHE / HF_HOME / XDG_CACHE_HOME, HF_TOKEN or the token file,
// HF_HUB_OFFLINE. Also the checks on hub ids and revisions, done before any request
// because both end up in URLs and cache paths.
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, withCode } from '../errors.js';

export interface HubSettings {
  /** 'https://huggingface.co' or HF_ENDPOINT, without a trailing slash. */
  endpoint: string;
  /** The hub cache folder (holds models--owner--name/). */
  cacheDir: string;
  token: string | null;
  offline: boolean;
  /** HEAD requests give up after this long (HF_HUB_ETAG_TIMEOUT, seconds, default 10). */
  etagTimeoutMs: number;
  /** A download that receives nothing for this long is dropped and resumed (HF_HUB_DOWNLOAD_TIMEOUT, default 10 s). */
  downloadTimeoutMs: number;
}

export interface HubOverrides {
  endpoint?: string;
  cacheDir?: string;
  /** null: send no token even when HF_TOKEN is set. */
  token?: string | null;
  offline?: boolean;
  etagTimeoutMs?: number;
  downloadTimeoutMs?: number;
}

const TRUE_VALUES = new Set(['1', 'ON', 'YES', 'TRUE']);

function nonEmpty(v: string | undefined): string | undefined {
  return v !== undefined && v.trim() !== '' ? v : undefined;
}

/** HF_HOME, default $XDG_CACHE_HOME/huggingface or ~/.cache/huggingface. */
export function hfHome(env: NodeJS.ProcessEnv = process.env): string {
  return nonEmpty(env.HF_HOME) ?? join(nonEmpty(env.XDG_CACHE_HOME) ?? join(homedir(), '.cache'), 'huggingface');
}

function secondsMs(v: string | undefined, fallbackMs: number): number {
  const n = Number(v);
  return v !== undefined && v.trim() !== '' && Number.isFinite(n) && n > 0 ? n * 1000 : fallbackMs;
}

function tokenFrom(env: NodeJS.ProcessEnv): string | null {
  const fromEnv = nonEmpty(env.HF_TOKEN) ?? nonEmpty(env.HUGGING_FACE_HUB_TOKEN);
  if (fromEnv !== undefined) return fromEnv.trim();
  try {
    const t = readFileSync(nonEmpty(env.HF_TOKEN_PATH) ?? join(hfHome(env), 'token'), 'utf8').trim();
    return t === '' ? null : t;
  } catch {
    return null;
  }
}

export function hubSettings(o: HubOverrides = {}, env: NodeJS.ProcessEnv = process.env): HubSettings {
  const cacheDir =
    o.cacheDir ?? nonEmpty(env.HF_HUB_CACHE) ?? nonEmpty(env.HUGGINGFACE_HUB_CACHE) ?? join(hfHome(env), 'hub');
  return {
    endpoint: (o.endpoint ?? nonEmpty(env.HF_ENDPOINT) ?? 'https://huggingface.co').replace(/\/+$/, ''),
    cacheDir,
    token: o.token !== undefined ? o.token : tokenFrom(env),
    offline: o.offline ?? TRUE_VALUES.has((env.HF_HUB_OFFLINE ?? '').trim().toUpperCase()),
    etagTimeoutMs: o.etagTimeoutMs ?? secondsMs(env.HF_HUB_ETAG_TIMEOUT, 10_000),
    downloadTimeoutMs: o.downloadTimeoutMs ?? secondsMs(env.HF_HUB_DOWNLOAD_TIMEOUT, 10_000),
  };
}

// huggingface_hub's validate_repo_id: `name` or `owner/name`, each part word characters,
// '-' and '.', starting and ending with a word character; no '--' or '..'; at most 96 chars.
const ID_PART = '[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?';
const REPO_ID = new RegExp(`^(?:${ID_PART}/)?${ID_PART}$`);

/** True when `s` is a valid hub model id ('gpt2', 'openai-community/gpt2'). */
export function isHubId(s: string): boolean {
  return s.length <= 96 && REPO_ID.test(s) && !s.includes('--') && !s.includes('..') && !s.endsWith('.git');
}

/** Throws a TypeError unless `s` is a hub id; `orFolder` says a folder was also acceptable. */
export function checkHubId(s: unknown, what: string, orFolder = false): string {
  const also = orFolder ? 'neither an existing folder nor a' : 'not a';
  if (typeof s !== 'string' || !isHubId(s)) {
    throw withCode(
      new TypeError(`${what}: '${String(s)}' is ${also} hub id ('owner/name' or 'name': letters, digits, '_', '-', '.')`),
      ErrorCode.InvalidArg,
    );
  }
  return s;
}

export const COMMIT_HASH = /^[0-9a-f]{40}$/;

/**
 * A branch, tag or commit: it names a file under refs/ (as in huggingface_hub, 'refs/pr/1' is
 * refs/refs/pr/1), so no empty, '.' or '..' segment and nothing outside [A-Za-z0-9_.-/].
 */
export function checkRevision(r: unknown, what: string): string {
  const ok =
    typeof r === 'string' &&
    r.length > 0 &&
    r.length <= 256 &&
    /^[A-Za-z0-9_.\-/]+$/.test(r) &&
    r.split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..');
  if (!ok) {
    throw withCode(
      new TypeError(`${what}: revision must be a branch, tag or commit hash (letters, digits, '_', '-', '.', '/'; got '${String(r)}')`),
      ErrorCode.InvalidArg,
    );
  }
  return r;
}

/** A file name from the server (a shard in an index, an etag): one plain path segment. */
export function isPlainFileName(s: unknown): s is string {
  return typeof s === 'string' && s.length > 0 && s.length <= 255 && /^[A-Za-z0-9_.-]+$/.test(s) && s !== '.' && !s.includes('..');
}
