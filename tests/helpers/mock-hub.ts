// A loopback stand-in for the Hugging Face hub's resolve endpoint and its CDN, answering the
// way huggingface.co does: HEAD/GET /<repo>/resolve/<revision>/<file> with X-Repo-Commit and
// ETag (git blob sha1) for files kept in git; for LFS files X-Linked-Etag (sha256) and
// X-Linked-Size and a 302 to a second server (the "CDN") that serves Range requests.
// 404 with X-Error-Code for unknown repos, revisions and files; 401 for gated repos without the
// right token; a legacy id answered with a relative 307. Faults on demand: a dropped connection
// half-way through a file, or wrong bytes. Every request is recorded.
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface MockRepo {
  commit: string;
  files: Record<string, Buffer>;
  /** Files served through LFS (302 to the CDN); the others are git files. */
  lfs: string[];
  /** Only this token gets in (401 otherwise). */
  token?: string;
  /** A legacy id ('tiny-gpt2') redirected here with a relative 307. */
  alias?: string;
}

export interface RecordedRequest {
  server: 'hub' | 'cdn';
  method: string;
  path: string;
  /** The repository file asked for (null for unknown paths). */
  file: string | null;
  authorization: string | undefined;
  range: string | undefined;
}

export const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
export const gitSha1 = (b: Buffer) => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

export class MockHub {
  readonly repos = new Map<string, MockRepo>();
  readonly requests: RecordedRequest[] = [];
  /** Files whose next CDN GET stops after half the bytes (then the socket is destroyed). */
  readonly dropOnce = new Set<string>();
  /** Files whose next CDN GET sends half the bytes, then nothing (the connection stays open). */
  readonly stallOnce = new Set<string>();
  /** Files whose GETs (hub or CDN) send bytes that do not match the etag. */
  readonly corrupt = new Set<string>();
  /** The CDN answers Range requests with the whole file (200), as some servers do. */
  ignoreRange = false;
  /** The hub's LFS redirect goes to a CDN path that redirects again with a relative Location. */
  relativeCdnHop = false;
  url = '';
  cdnUrl = '';
  readonly #hub = createServer((req, res) => this.#serveHub(req, res));
  readonly #cdn = createServer((req, res) => this.#serveCdn(req, res));
  /** sha256 -> content, what the CDN serves (the hub's redirect adds the file name). */
  readonly #blobs = new Map<string, Buffer>();

  static async start(): Promise<MockHub> {
    const hub = new MockHub();
    hub.url = await listen(hub.#hub);
    hub.cdnUrl = await listen(hub.#cdn);
    return hub;
  }

  addRepo(id: string, repo: MockRepo): void {
    this.repos.set(id, repo);
    for (const f of repo.lfs) this.#blobs.set(sha256(repo.files[f]!), repo.files[f]!);
  }

  /** Requests of one kind: `count('GET', 'cdn')`. */
  count(method: string, server?: 'hub' | 'cdn', file?: string): number {
    return this.requests.filter((r) => r.method === method && (!server || r.server === server) && (!file || r.file === file)).length;
  }

  async close(): Promise<void> {
    for (const s of [this.#hub, this.#cdn]) {
      s.closeAllConnections();
      await new Promise((resolve) => s.close(resolve));
    }
  }

  #record(server: 'hub' | 'cdn', req: IncomingMessage, file: string | null): void {
    this.requests.push({ server, method: req.method ?? '', path: req.url ?? '', file, authorization: req.headers.authorization, range: req.headers.range });
  }

  /** The content, or a copy with one byte flipped when `file` is in `corrupt`. */
  #maybeCorrupt(file: string, content: Buffer): Buffer {
    if (!this.corrupt.has(file)) return content;
    const bad = Buffer.from(content);
    bad[bad.length >> 1]! ^= 0xff;
    return bad;
  }

  #serveHub(req: IncomingMessage, res: ServerResponse): void {
    const path = new URL(req.url ?? '/', this.url).pathname;
    const parts = path.split('/').slice(1);
    const at = parts.indexOf('resolve');
    const repoId = at > 0 ? parts.slice(0, at).map(decodeURIComponent).join('/') : '';
    const revision = at > 0 ? decodeURIComponent(parts[at + 1] ?? '') : '';
    const file = at > 0 ? parts.slice(at + 2).map(decodeURIComponent).join('/') : null;
    this.#record('hub', req, file);
    const fail = (status: number, code: string) => {
      res.writeHead(status, { 'X-Error-Code': code, 'Content-Type': 'text/plain' });
      res.end(req.method === 'HEAD' ? undefined : code);
    };
    const alias = [...this.repos.entries()].find(([, r]) => r.alias === repoId);
    if (alias) {
      res.writeHead(307, { Location: `/${alias[0]}/resolve/${encodeURIComponent(revision)}/${file}` });
      return void res.end();
    }
    const repo = this.repos.get(repoId);
    if (!repo || file === null) return fail(404, 'RepoNotFound');
    if (repo.token !== undefined && req.headers.authorization !== `Bearer ${repo.token}`) return fail(401, 'GatedRepo');
    if (revision !== 'main' && revision !== repo.commit) return fail(404, 'RevisionNotFound');
    const content = repo.files[file];
    if (content === undefined) {
      res.writeHead(404, { 'X-Error-Code': 'EntryNotFound', 'X-Repo-Commit': repo.commit });
      return void res.end();
    }
    if (repo.lfs.includes(file)) {
      const etag = sha256(content);
      const pointer = `version https://git-lfs.github.com/spec/v1\noid sha256:${etag}\nsize ${content.length}\n`;
      res.writeHead(302, {
        Location: `${this.cdnUrl}/${this.relativeCdnHop ? 'hop/' : ''}blobs/${etag}?name=${encodeURIComponent(file)}`,
        'X-Repo-Commit': repo.commit,
        ETag: `"${gitSha1(Buffer.from(pointer))}"`,
        'X-Linked-Etag': `"${etag}"`,
        'X-Linked-Size': String(content.length),
        'Content-Length': String(Buffer.byteLength(pointer)),
      });
      return void res.end();
    }
    res.writeHead(200, { 'X-Repo-Commit': repo.commit, ETag: `"${gitSha1(content)}"`, 'Content-Length': String(content.length) });
    res.end(req.method === 'HEAD' ? undefined : this.#maybeCorrupt(file, content));
  }

  #serveCdn(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.cdnUrl);
    if (url.pathname.startsWith('/hop/')) {
      this.#record('cdn', req, url.searchParams.get('name'));
      res.writeHead(307, { Location: `../../${url.pathname.slice('/hop/'.length)}${url.search}` });
      return void res.end();
    }
    const stored = this.#blobs.get(url.pathname.replace(/^\/blobs\//, ''));
    const blob = stored && { content: stored, file: url.searchParams.get('name') ?? '' };
    this.#record('cdn', req, blob?.file ?? null);
    if (!blob) {
      res.writeHead(404);
      return void res.end();
    }
    const content = this.#maybeCorrupt(blob.file, blob.content);
    const m = this.ignoreRange ? null : /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = m ? Number(m[1]) : 0;
    if (start >= content.length && content.length > 0) {
      res.writeHead(416, { 'Content-Range': `bytes */${content.length}` });
      return void res.end();
    }
    const body = content.subarray(start);
    res.writeHead(m ? 206 : 200, {
      'Content-Length': String(body.length),
      ...(m ? { 'Content-Range': `bytes ${start}-${content.length - 1}/${content.length}` } : {}),
    });
    if (req.method === 'HEAD') return void res.end();
    if (this.dropOnce.delete(blob.file)) {
      // Half the file, then the connection is gone (a network drop mid-download).
      res.write(body.subarray(0, body.length >> 1), () => setTimeout(() => res.destroy(), 20));
      return;
    }
    if (this.stallOnce.delete(blob.file)) {
      res.write(body.subarray(0, body.length >> 1));
      return;
    }
    res.end(body);
  }
}
