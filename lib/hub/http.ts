// Requests to the hub, as huggingface_hub makes them (file_download.py): HEAD on the resolve
// URL without following redirects to read the metadata, then GET following redirects by hand
// so the token is dropped when a redirect leaves the hub's host (the CDN gets no token).
// Network and HTTP failures become Errors with a code, the URL and the status.
import { ErrorCode, withCode } from '../errors.js';

const MAX_REDIRECTS = 10;

export interface HubError extends Error {
  code: ErrorCode;
  url?: string;
  status?: number;
}

export function hubError(message: string, code: ErrorCode, extra: { url?: string; status?: number; cause?: unknown } = {}): HubError {
  const err = withCode(new Error(message, extra.cause === undefined ? undefined : { cause: extra.cause }), code) as HubError;
  if (extra.url !== undefined) err.url = extra.url;
  if (extra.status !== undefined) err.status = extra.status;
  return err;
}

export function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  const err = withCode(new Error(reason instanceof Error && reason.name !== 'AbortError' ? reason.message : 'download aborted'), ErrorCode.Aborted);
  err.name = 'AbortError';
  return err;
}

/** True for errors that mean "could not reach the server" (then a cached snapshot may be used). */
export function isNetworkError(err: unknown): boolean {
  return (err as HubError)?.code === ErrorCode.FileIO && (err as HubError).status === undefined && (err as HubError).url !== undefined;
}

function causeText(err: unknown): string {
  const c = (err as { cause?: { code?: string; message?: string } }).cause;
  return c?.code ?? c?.message ?? (err as Error).message;
}

export interface RequestOptions {
  headers: Record<string, string>;
  signal?: AbortSignal;
  /** Gives up when no response (headers) arrives in this time. */
  timeoutMs?: number;
}

/** One request, no redirects followed. Network failures throw a FileIO error naming the URL. */
export async function request(method: 'HEAD' | 'GET', url: string, o: RequestOptions): Promise<Response> {
  const signals = [o.signal, o.timeoutMs ? AbortSignal.timeout(o.timeoutMs) : undefined].filter((s) => s !== undefined);
  try {
    return await fetch(url, { method, headers: o.headers, redirect: 'manual', signal: signals.length ? AbortSignal.any(signals) : undefined });
  } catch (err) {
    if (o.signal?.aborted) throw abortError(o.signal);
    const why = (err as Error).name === 'TimeoutError' ? `no answer in ${o.timeoutMs} ms` : causeText(err);
    throw hubError(`cannot reach ${url}: ${why}`, ErrorCode.FileIO, { url, cause: err });
  }
}

function isRedirect(status: number): boolean {
  return status >= 300 && status <= 399 && status !== 304;
}

/** The URL a Location header points to (relative ones against `from`); only http(s). */
export function redirectTarget(res: Response, from: string): string {
  const loc = res.headers.get('location');
  let target: URL | undefined;
  try {
    target = loc ? new URL(loc, from) : undefined;
  } catch {
    target = undefined;
  }
  if (!target || (target.protocol !== 'http:' && target.protocol !== 'https:')) {
    throw hubError(`${from}: HTTP ${res.status} redirect to an invalid location '${loc ?? ''}'`, ErrorCode.FileIO, { url: from, status: res.status });
  }
  return target.href;
}

/** Headers for a hop to `url`: the token only goes to the hub's own origin. */
function headersFor(url: string, hubOrigin: string, headers: Record<string, string>): Record<string, string> {
  if (new URL(url).origin === hubOrigin) return headers;
  const { Authorization: _dropped, ...rest } = headers;
  return rest;
}

/**
 * HEAD that follows redirects within the same origin only (a renamed repo, a legacy id like
 * 'gpt2'), like huggingface_hub's follow_relative_redirects; a redirect elsewhere (the CDN)
 * is returned as is, its Location being where the GET goes.
 */
export async function headFollowingSameOrigin(url: string, o: RequestOptions): Promise<{ res: Response; url: string }> {
  for (let hop = 0; ; hop++) {
    const res = await request('HEAD', url, o);
    if (!isRedirect(res.status)) return { res, url };
    const next = redirectTarget(res, url);
    if (new URL(next).origin !== new URL(url).origin) return { res, url };
    if (hop >= MAX_REDIRECTS) throw hubError(`${url}: more than ${MAX_REDIRECTS} redirects`, ErrorCode.FileIO, { url, status: res.status });
    url = next;
  }
}

/** GET following redirects by hand; Authorization only to `hubOrigin`. Returns the final response. */
export async function getFollowing(url: string, hubOrigin: string, o: RequestOptions): Promise<{ res: Response; url: string }> {
  for (let hop = 0; ; hop++) {
    const res = await request('GET', url, { ...o, headers: headersFor(url, hubOrigin, o.headers) });
    if (!isRedirect(res.status)) return { res, url };
    await res.body?.cancel();
    if (hop >= MAX_REDIRECTS) throw hubError(`${url}: more than ${MAX_REDIRECTS} redirects`, ErrorCode.FileIO, { url, status: res.status });
    url = redirectTarget(res, url);
  }
}

/** The error for a non-success answer, in the hub's terms (X-Error-Code, gated, not found). */
export function httpError(res: Response, url: string, what: string, sentToken: boolean): HubError {
  const hubCode = res.headers.get('x-error-code');
  const hubMessage = res.headers.get('x-error-message');
  const detail = hubMessage ? ` (${hubMessage})` : '';
  let message: string;
  if (res.status === 401 || res.status === 403 || hubCode === 'GatedRepo') {
    message = sentToken
      ? `${what}: access denied (HTTP ${res.status})${detail}: the token in HF_TOKEN was refused or has no access to this gated or private repository`
      : `${what}: access denied (HTTP ${res.status})${detail}: the repository is gated or private, or does not exist; set HF_TOKEN to a token with access (https://huggingface.co/settings/tokens)`;
  } else if (res.status === 404) {
    const kind = hubCode === 'RepoNotFound' ? 'repository not found' : hubCode === 'RevisionNotFound' ? 'revision not found' : hubCode === 'EntryNotFound' ? 'file not found' : 'repository or file not found';
    message = `${what}: ${kind} (HTTP 404)${detail}`;
  } else {
    message = `${what}: HTTP ${res.status} ${res.statusText}${detail}`;
  }
  return hubError(`${message} [${url}]`, ErrorCode.FileIO, { url, status: res.status });
}

export interface FileMetadata {
  commit: string | null;
  /** Normalised: no quotes, no W/ prefix. */
  etag: string | null;
  size: number | null;
  /** Where the GET goes: the CDN for LFS files, else the (redirected) resolve URL. */
  location: string;
}

/** huggingface_hub's _normalize_etag, also dropping the weak-validator prefix. */
export function normalizeEtag(etag: string | null): string | null {
  if (etag === null) return null;
  return etag.trim().replace(/^W\//, '').replace(/^"|"$/g, '');
}

/** Metadata from a HEAD answer (X-Repo-Commit, X-Linked-Etag/ETag, X-Linked-Size/Content-Length). */
export function fileMetadata(res: Response, url: string): FileMetadata {
  const h = res.headers;
  const sizeText = h.get('x-linked-size') ?? h.get('content-length');
  const size = sizeText !== null && /^\d+$/.test(sizeText.trim()) ? Number(sizeText) : null;
  return {
    commit: h.get('x-repo-commit'),
    etag: normalizeEtag(h.get('x-linked-etag') ?? h.get('etag')),
    size: size !== null && Number.isSafeInteger(size) ? size : null,
    location: isRedirect(res.status) ? redirectTarget(res, url) : url,
  };
}
