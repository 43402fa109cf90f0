// Hub downloads (lib/hub) against a loopback mock of huggingface.co and its CDN
// (tests/helpers/mock-hub.ts): the cache layout huggingface_hub writes, reuse, resume, checksum
// failures, gated repos and tokens, offline mode, sharded checkpoints, id checks, `gpt2-node pull`.
import { spawn } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, readdirSync, rmSync, existsSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode, Model } from '../lib/index.js';
import { hubSettings, pullModel, resolveModel, type DownloadProgress } from '../lib/hub/index.js';
import { buildDistIfStale, runCliAsync } from './helpers/cli.js';
import { cases, expectClose, fixtures, golden, haveFixtures } from './helpers/fixtures.js';
import { gitSha1, MockHub, sha256, type MockRepo } from './helpers/mock-hub.js';

const REPO = 'test-org/tiny-gpt2';
const COMMIT = 'a'.repeat(8) + '0123456789abcdef0123456789abcdef';
const read = (p: string) => readFileSync(join(fixtures, p));

function tinyRepo(extra: Partial<MockRepo> = {}): MockRepo {
  return {
    commit: COMMIT,
    files: {
      'config.json': read('models/tiny/config.json'),
      'model.safetensors': read('models/tiny/model.safetensors'),
      'vocab.json': read('tokenizer/vocab.json'),
      'merges.txt': read('tokenizer/merges.txt'),
    },
    lfs: ['model.safetensors'],
    ...extra,
  };
}

/** The tiny checkpoint as one shard named by a model.safetensors.index.json. */
function shardedRepo(shardName: string): MockRepo {
  const weights = read('models/tiny/model.safetensors');
  const header = JSON.parse(weights.subarray(8, 8 + Number(weights.readBigUInt64LE(0))).toString('utf8')) as Record<string, unknown>;
  const weightMap = Object.fromEntries(Object.keys(header).filter((k) => k !== '__metadata__').map((k) => [k, shardName]));
  return {
    commit: 'b'.repeat(40),
    files: {
      'config.json': read('models/tiny/config.json'),
      'model.safetensors.index.json': Buffer.from(JSON.stringify({ metadata: { total_size: weights.length }, weight_map: weightMap })),
      [shardName]: weights,
    },
    lfs: [shardName],
  };
}

const ENV_KEYS = ['HF_HOME', 'HF_HUB_CACHE', 'HUGGINGFACE_HUB_CACHE', 'HF_ENDPOINT', 'HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN', 'HF_TOKEN_PATH', 'HF_HUB_OFFLINE'];
const savedEnv = Object.fromEntries(ENV_KEYS.map((k) => [k, process.env[k]]));

describe.skipIf(!haveFixtures)('hub downloads', () => {
  let hub: MockHub;
  let home: string;
  let cache: string;
  const repoDir = (id = REPO) => join(cache, `models--${id.replaceAll('/', '--')}`);

  beforeAll(async () => {
    hub = await MockHub.start();
    hub.addRepo(REPO, tinyRepo({ alias: 'tiny-gpt2' }));
    hub.addRepo('test-org/gated', tinyRepo({ token: 'hf_secret' }));
    hub.addRepo('test-org/sharded', shardedRepo('model-00001-of-00001.safetensors'));
    hub.addRepo('test-org/evil-index', shardedRepo('../../../evil.safetensors'));
    hub.addRepo('test-org/no-weights', { commit: 'c'.repeat(40), files: { 'config.json': read('models/tiny/config.json') }, lfs: [] });
  });
  afterAll(async () => {
    await hub.close();
    for (const k of ENV_KEYS) {
      if (savedEnv[k] === undefined) delete process.env[k];
      else process.env[k] = savedEnv[k];
    }
  });
  beforeEach(() => {
    home = mkdtempSync(join(tmpdir(), 'gpt2-hub-'));
    cache = join(home, 'hub');
    for (const k of ENV_KEYS) delete process.env[k];
    process.env.HF_HOME = home;
    process.env.HF_ENDPOINT = hub.url;
    hub.requests.length = 0;
    hub.dropOnce.clear();
    hub.stallOnce.clear();
    hub.corrupt.clear();
    hub.ignoreRange = false;
    hub.relativeCdnHop = false;
  });
  afterEach(() => rmSync(home, { recursive: true, force: true }));

  it('reads the cache folder, endpoint, token and offline flag like huggingface_hub', () => {
    const env = { HOME: '/h', XDG_CACHE_HOME: '/x' };
    expect(hubSettings({}, { ...env, HF_TOKEN_PATH: '/nonexistent' })).toEqual({
      endpoint: 'https://huggingface.co', cacheDir: '/x/huggingface/hub', token: null, offline: false, etagTimeoutMs: 10_000, downloadTimeoutMs: 10_000,
    });
    expect(hubSettings({}, { HF_HUB_ETAG_TIMEOUT: '2.5', HF_HUB_DOWNLOAD_TIMEOUT: '60' })).toMatchObject({ etagTimeoutMs: 2500, downloadTimeoutMs: 60_000 });
    expect(hubSettings({}, { ...env, HF_HOME: '/hf' }).cacheDir).toBe('/hf/hub');
    expect(hubSettings({}, { ...env, HF_HOME: '/hf', HF_HUB_CACHE: '/c' }).cacheDir).toBe('/c');
    expect(hubSettings({}, { HF_ENDPOINT: 'http://mirror/' }).endpoint).toBe('http://mirror');
    for (const v of ['1', 'true', 'YES', 'on']) expect(hubSettings({}, { HF_HUB_OFFLINE: v }).offline).toBe(true);
    for (const v of ['0', 'false', '']) expect(hubSettings({}, { HF_HUB_OFFLINE: v }).offline).toBe(false);
    writeFileSync(join(home, 'token'), 'hf_from_file\n');
    expect(hubSettings({}, { HF_HOME: home }).token).toBe('hf_from_file');
    expect(hubSettings({}, { HF_HOME: home, HF_TOKEN: 'hf_env' }).token).toBe('hf_env');
  });

  it('pulls into the huggingface_hub layout: blobs, relative snapshot symlinks, refs/main', async () => {
    const events: DownloadProgress[] = [];
    const r = await pullModel(REPO, { onProgress: (p) => events.push(p) });
    const repo = tinyRepo();
    expect(r).toMatchObject({ repo: REPO, revision: 'main', commit: COMMIT, path: join(repoDir(), 'snapshots', COMMIT), fromCacheOnly: false });
    expect(r.files.map((f) => f.name)).toEqual(['config.json', 'model.safetensors', 'vocab.json', 'merges.txt']);
    expect(readFileSync(join(repoDir(), 'refs/main'), 'utf8')).toBe(COMMIT);
    for (const f of r.files) {
      const content = repo.files[f.name]!;
      const etag = f.name === 'model.safetensors' ? sha256(content) : gitSha1(content);
      expect(f).toEqual({ name: f.name, size: content.length, etag, sha256: f.name === 'model.safetensors' ? etag : null, cached: false });
      const link = join(r.path, f.name);
      expect(lstatSync(link).isSymbolicLink()).toBe(true);
      expect(readlinkSync(link)).toBe(`../../blobs/${etag}`);
      expect(readFileSync(link).equals(content)).toBe(true);
    }
    expect(readdirSync(join(repoDir(), 'blobs')).sort()).toEqual(r.files.map((f) => f.etag).sort());
    // Absent optional files are remembered under .no_exist/<commit>/, as huggingface_hub does.
    expect(readdirSync(join(repoDir(), '.no_exist', COMMIT)).sort()).toEqual(['generation_config.json', 'tokenizer.json', 'tokenizer_config.json']);
    expect(existsSync(join(cache, '.locks', `models--test-org--tiny-gpt2`))).toBe(true);
    expect(readdirSync(join(cache, '.locks', `models--test-org--tiny-gpt2`))).toEqual([]);
    // Progress: bytes grow to the total for the big file, one done event per file.
    const big = events.filter((e) => e.file === 'model.safetensors');
    expect(big.at(-1)).toEqual({ file: 'model.safetensors', bytes: repo.files['model.safetensors']!.length, total: repo.files['model.safetensors']!.length, done: true, cached: false });
    expect(big.some((e) => !e.done && e.bytes > 0 && e.bytes < e.total!)).toBe(true);
    expect(events.filter((e) => e.done).map((e) => e.file)).toEqual(r.files.map((f) => f.name));
    // The LFS file came from the CDN, the git files from the hub.
    expect(hub.count('GET', 'cdn', 'model.safetensors')).toBe(1);
    expect(hub.count('GET', 'hub', 'model.safetensors')).toBe(0);
  });

  it('a second pull only checks the commit (HEAD) and downloads nothing', async () => {
    await pullModel(REPO);
    hub.requests.length = 0;
    const r = await pullModel(REPO);
    expect(r.files.every((f) => f.cached)).toBe(true);
    expect(hub.count('GET')).toBe(0);
    expect(hub.count('HEAD')).toBeGreaterThan(0);
  });

  it('Model.load(hub id) downloads once and its logits match the golden fixtures', async () => {
    const c = cases.find((x) => x.id === 'tiny.forward.hello.0')!;
    const m = await Model.load(REPO, { device: 'cpu' });
    try {
      expect(Array.from(m.tokenizer.encode(c.input.text!))).toEqual(c.input.input_ids);
      const r = await m.forward(new Uint32Array(c.input.input_ids!), { logits: 'all' });
      expectClose(r.logits![0]!, golden(c.expected.logits_full!), c.tolerance, 'logits_full');
    } finally {
      m.dispose();
    }
    expect(hub.count('GET', 'cdn')).toBe(1);
    // A folder that exists wins over a hub id: nothing is asked of the hub.
    hub.requests.length = 0;
    const local = join(home, 'test-org', 'tiny-gpt2');
    mkdirSync(local, { recursive: true });
    writeFileSync(join(local, 'config.json'), read('models/tiny/config.json'));
    symlinkSync(join(fixtures, 'models/tiny/model.safetensors'), join(local, 'model.safetensors'));
    const cwd = process.cwd();
    process.chdir(home);
    try {
      expect(await resolveModel('test-org/tiny-gpt2')).toBe('test-org/tiny-gpt2');
      (await Model.load('test-org/tiny-gpt2', { device: 'cpu' })).dispose();
    } finally {
      process.chdir(cwd);
    }
    expect(hub.requests).toEqual([]);
  });

  it('a legacy id follows the hub\'s relative redirect and is cached under its own name', async () => {
    const r = await pullModel('tiny-gpt2');
    expect(r.path).toBe(join(repoDir('tiny-gpt2'), 'snapshots', COMMIT));
    expect(readFileSync(join(r.path, 'config.json')).equals(read('models/tiny/config.json'))).toBe(true);
    expect(hub.requests.some((q) => q.path.startsWith('/tiny-gpt2/resolve/main/'))).toBe(true);
  });

  it('uses a cache that huggingface_hub wrote, offline, without any request', async () => {
    // What Python leaves behind: blobs named by etag, relative symlinks, refs/main.
    const repo = tinyRepo();
    const commit = 'd'.repeat(40);
    mkdirSync(join(repoDir(), 'blobs'), { recursive: true });
    mkdirSync(join(repoDir(), 'snapshots', commit), { recursive: true });
    mkdirSync(join(repoDir(), 'refs'), { recursive: true });
    for (const name of ['config.json', 'model.safetensors', 'vocab.json', 'merges.txt']) {
      const etag = name === 'model.safetensors' ? sha256(repo.files[name]!) : gitSha1(repo.files[name]!);
      writeFileSync(join(repoDir(), 'blobs', etag), repo.files[name]!);
      symlinkSync(`../../blobs/${etag}`, join(repoDir(), 'snapshots', commit, name));
    }
    writeFileSync(join(repoDir(), 'refs', 'main'), commit);
    process.env.HF_HUB_OFFLINE = '1';
    const r = await pullModel(REPO);
    expect(r).toMatchObject({ commit, path: join(repoDir(), 'snapshots', commit), fromCacheOnly: true });
    expect(r.files.map((f) => [f.name, f.cached])).toEqual([['config.json', true], ['model.safetensors', true], ['vocab.json', true], ['merges.txt', true]]);
    expect(r.files[1]!.sha256).toBe(sha256(repo.files['model.safetensors']!));
    const m = await Model.load(REPO, { device: 'cpu' });
    expect(Array.from(m.tokenizer.encode('Hello world'))).toEqual([15496, 995]);
    m.dispose();
    expect(hub.requests).toEqual([]);
    // Online, the same cache is reused: the hub's commit differs, but the blobs are there.
    delete process.env.HF_HUB_OFFLINE;
    const online = await pullModel(REPO);
    expect(online.files.every((f) => f.cached)).toBe(true);
    expect(hub.count('GET')).toBe(0);
    expect(readFileSync(join(repoDir(), 'refs/main'), 'utf8')).toBe(COMMIT);
  });

  it('offline with an empty cache: a clear error and no request', async () => {
    process.env.HF_HUB_OFFLINE = 'true';
    await expect(pullModel(REPO)).rejects.toMatchObject({ code: ErrorCode.FileIO, message: expect.stringMatching(/test-org\/tiny-gpt2@main: not in the Hugging Face cache.*HF_HUB_OFFLINE/) });
    await expect(Model.load(REPO)).rejects.toThrow(/HF_HUB_OFFLINE/);
    // A snapshot without its weights is not enough either, and the error names what is missing.
    mkdirSync(join(repoDir(), 'refs'), { recursive: true });
    writeFileSync(join(repoDir(), 'refs', 'main'), COMMIT);
    mkdirSync(join(repoDir(), 'snapshots', COMMIT), { recursive: true });
    writeFileSync(join(repoDir(), 'snapshots', COMMIT, 'config.json'), '{}');
    await expect(pullModel(REPO)).rejects.toThrow(/model\.safetensors .*is not in the cached snapshot/);
    expect(hub.requests).toEqual([]);
  });

  it('when the hub cannot be reached, a complete cached snapshot is used', async () => {
    await pullModel(REPO);
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const nobody = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise((resolve) => closed.close(resolve));
    const down = await pullModel(REPO, { endpoint: nobody });
    expect(down).toMatchObject({ commit: COMMIT, fromCacheOnly: true });
    // Nothing cached for that revision: the network error, with the URL.
    await expect(pullModel(REPO, { endpoint: nobody, revision: 'dev' })).rejects.toMatchObject({
      code: ErrorCode.FileIO,
      url: `${nobody}/test-org/tiny-gpt2/resolve/dev/config.json`,
      message: `cannot reach ${nobody}/test-org/tiny-gpt2/resolve/dev/config.json: ECONNREFUSED`,
    });
  });

  it('resumes a dropped download with a Range request and verifies the whole file', async () => {
    hub.dropOnce.add('model.safetensors');
    const r = await pullModel(REPO);
    const gets = hub.requests.filter((q) => q.server === 'cdn' && q.method === 'GET');
    expect(gets).toHaveLength(2);
    expect(gets[0]!.range).toBeUndefined();
    expect(gets[1]!.range).toMatch(/^bytes=[1-9]\d*-$/);
    const want = tinyRepo().files['model.safetensors']!;
    expect(sha256(readFileSync(join(r.path, 'model.safetensors')))).toBe(sha256(want));
    expect(readdirSync(join(repoDir(), 'blobs')).some((n) => n.endsWith('.incomplete'))).toBe(false);
  });

  it('a download that stalls (no bytes for HF_HUB_DOWNLOAD_TIMEOUT) is dropped and resumed', async () => {
    hub.stallOnce.add('model.safetensors');
    const r = await pullModel(REPO, { downloadTimeoutMs: 300 });
    const ranges = hub.requests.filter((q) => q.server === 'cdn').map((q) => q.range);
    expect(ranges).toHaveLength(2);
    expect(ranges[1]).toMatch(/^bytes=[1-9]\d*-$/);
    expect(sha256(readFileSync(join(r.path, 'model.safetensors')))).toBe(r.files[1]!.etag);
  });

  it('a bad HF_ENDPOINT is a TypeError', async () => {
    process.env.HF_ENDPOINT = 'ftp://example';
    await expect(pullModel(REPO)).rejects.toMatchObject({ name: 'TypeError', message: expect.stringMatching(/HF_ENDPOINT/) });
    await expect(pullModel(REPO, { endpoint: 'not a url' })).rejects.toThrow(TypeError);
  });

  it('resumes a .incomplete file an earlier process left behind', async () => {
    const want = tinyRepo().files['model.safetensors']!;
    const etag = sha256(want);
    mkdirSync(join(repoDir(), 'blobs'), { recursive: true });
    writeFileSync(join(repoDir(), 'blobs', `${etag}.incomplete`), want.subarray(0, 1_000_000));
    const r = await pullModel(REPO);
    expect(hub.requests.filter((q) => q.server === 'cdn').map((q) => q.range)).toEqual(['bytes=1000000-']);
    expect(readFileSync(join(r.path, 'model.safetensors')).equals(want)).toBe(true);
  });

  it('a complete .incomplete left by a crash is checked, not downloaded again; a wrong one is replaced', async () => {
    const want = tinyRepo().files['model.safetensors']!;
    const partial = join(repoDir(), 'blobs', `${sha256(want)}.incomplete`);
    mkdirSync(join(repoDir(), 'blobs'), { recursive: true });
    writeFileSync(partial, want);
    await pullModel(REPO);
    expect(hub.count('GET', 'cdn')).toBe(0);
    rmSync(join(repoDir()), { recursive: true });
    mkdirSync(join(repoDir(), 'blobs'), { recursive: true });
    const bad = Buffer.from(want);
    bad[0]! ^= 1;
    writeFileSync(partial, bad);
    const r = await pullModel(REPO);
    expect(hub.requests.filter((q) => q.server === 'cdn').map((q) => q.range)).toEqual([undefined]);
    expect(readFileSync(join(r.path, 'model.safetensors')).equals(want)).toBe(true);
  });

  it('a server that answers a Range request with 200 gets the download restarted from 0', async () => {
    const want = tinyRepo().files['model.safetensors']!;
    mkdirSync(join(repoDir(), 'blobs'), { recursive: true });
    writeFileSync(join(repoDir(), 'blobs', `${sha256(want)}.incomplete`), want.subarray(0, 5000));
    hub.ignoreRange = true;
    const r = await pullModel(REPO);
    expect(hub.requests.filter((q) => q.server === 'cdn').map((q) => q.range)).toEqual(['bytes=5000-']);
    expect(readFileSync(join(r.path, 'model.safetensors')).equals(want)).toBe(true);
  });

  it('follows a relative Location from the CDN', async () => {
    hub.relativeCdnHop = true;
    const r = await pullModel(REPO);
    expect(hub.requests.filter((q) => q.server === 'cdn').map((q) => q.path.split('?')[0])).toEqual([
      `/hop/blobs/${r.files[1]!.etag}`,
      `/blobs/${r.files[1]!.etag}`,
    ]);
    expect(sha256(readFileSync(join(r.path, 'model.safetensors')))).toBe(r.files[1]!.etag);
  });

  it('wrong bytes: a checksum error naming both hashes, no blob, no snapshot entry, no .incomplete', async () => {
    hub.corrupt.add('model.safetensors');
    const etag = sha256(tinyRepo().files['model.safetensors']!);
    const err = (await pullModel(REPO).then(() => null, (e: unknown) => e)) as Error & { code: string };
    expect(err).toMatchObject({ code: ErrorCode.FileFormat });
    expect(err.message).toContain('model.safetensors');
    expect(err.message).toMatch(new RegExp(`expected sha256 ${etag} .*has [0-9a-f]{64}`));
    expect(existsSync(join(repoDir(), 'snapshots', COMMIT, 'model.safetensors'))).toBe(false);
    expect(readdirSync(join(repoDir(), 'blobs')).filter((n) => n.startsWith(etag))).toEqual([]);
    expect(existsSync(join(repoDir(), 'refs', 'main'))).toBe(false);
    // A file kept in git is checked against its git blob sha1.
    hub.corrupt.clear();
    hub.corrupt.add('vocab.json');
    await expect(pullModel(REPO)).rejects.toMatchObject({
      code: ErrorCode.FileFormat,
      message: expect.stringMatching(new RegExp(`vocab\\.json: checksum mismatch, expected git blob sha1 ${gitSha1(tinyRepo().files['vocab.json']!)} `)),
    });
    expect(existsSync(join(repoDir(), 'snapshots', COMMIT, 'vocab.json'))).toBe(false);
    expect(readdirSync(join(repoDir(), 'blobs')).some((n) => n.endsWith('.incomplete'))).toBe(false);
  });

  it('404: repository or file not found', async () => {
    await expect(pullModel('test-org/nope')).rejects.toMatchObject({ code: ErrorCode.FileIO, status: 404, message: expect.stringMatching(/test-org\/nope: config\.json: repository not found \(HTTP 404\)/) });
    await expect(pullModel(REPO, { revision: 'no-such-branch' })).rejects.toThrow(/revision not found/);
    await expect(pullModel('test-org/no-weights')).rejects.toThrow(/no model\.safetensors or model\.safetensors\.index\.json.*pytorch_model\.bin is not supported/);
  });

  it('401 on a gated repo without a token; HF_TOKEN gets in, and never goes to the CDN', async () => {
    await expect(pullModel('test-org/gated')).rejects.toMatchObject({ code: ErrorCode.FileIO, status: 401, message: expect.stringMatching(/gated or private.*set HF_TOKEN/) });
    process.env.HF_TOKEN = 'hf_wrong';
    await expect(pullModel('test-org/gated')).rejects.toThrow(/token in HF_TOKEN was refused/);
    process.env.HF_TOKEN = 'hf_secret';
    const r = await pullModel('test-org/gated');
    expect(r.files.map((f) => f.name)).toContain('model.safetensors');
    const ok = hub.requests.filter((q) => q.authorization === 'Bearer hf_secret');
    expect(ok.length).toBeGreaterThan(0);
    expect(ok.every((q) => q.server === 'hub')).toBe(true);
    expect(hub.requests.filter((q) => q.server === 'cdn').every((q) => q.authorization === undefined)).toBe(true);
    expect(hub.count('GET', 'cdn')).toBe(1);
  });

  it('a sharded checkpoint: the index and every shard it lists, and it loads', async () => {
    const r = await pullModel('test-org/sharded');
    expect(r.files.map((f) => f.name)).toEqual(['config.json', 'model.safetensors.index.json', 'model-00001-of-00001.safetensors']);
    expect(hub.count('HEAD', 'hub', 'model.safetensors')).toBe(1); // 404, then the index
    const m = await Model.load('test-org/sharded', { device: 'cpu' });
    expect(m.config.n_layer).toBe(2);
    m.dispose();
  });

  it('never follows a shard name out of the snapshot folder', async () => {
    await expect(pullModel('test-org/evil-index')).rejects.toMatchObject({ code: ErrorCode.FileFormat, message: expect.stringMatching(/'\.\.\/\.\.\/\.\.\/evil\.safetensors', which is not a plain file name/) });
    expect(hub.requests.some((q) => q.path.includes('evil.safetensors'))).toBe(false);
  });

  it('bad hub ids and revisions are TypeErrors before any request', async () => {
    for (const id of ['../x', 'a/b/c', '', 'a--b', '-x', 'x/', '/x', 'a/..', 'x.git']) {
      await expect(pullModel(id), id).rejects.toMatchObject({ name: 'TypeError', code: ErrorCode.InvalidArg });
    }
    await expect(resolveModel('a/b/c')).rejects.toThrow(/neither an existing folder nor a hub id/);
    for (const revision of ['../x', 'a//b', '', 'main/..', 'a b', '.']) {
      await expect(pullModel(REPO, { revision }), revision).rejects.toMatchObject({ name: 'TypeError', code: ErrorCode.InvalidArg });
    }
    // Not a hub id and not a folder: Model.load names the missing folder.
    await expect(Model.load('./no/such/folder')).rejects.toMatchObject({ code: ErrorCode.FileIO });
    expect(hub.requests).toEqual([]);
  });

  it('a commit hash revision is used as is, and the refs name branches only', async () => {
    const r = await pullModel(REPO, { revision: COMMIT });
    expect(r.commit).toBe(COMMIT);
    expect(hub.requests.every((q) => q.server === 'cdn' || q.path.includes(`/resolve/${COMMIT}/`))).toBe(true);
    expect(existsSync(join(repoDir(), 'refs'))).toBe(false);
    process.env.HF_HUB_OFFLINE = '1';
    expect((await pullModel(REPO, { revision: COMMIT })).path).toBe(r.path);
  });

  it('two pulls at once download the blob once (lock file)', async () => {
    const [a, b] = await Promise.all([pullModel(REPO), pullModel(REPO)]);
    expect(a.path).toBe(b.path);
    expect(hub.count('GET', 'cdn')).toBe(1);
    expect([a, b].flatMap((r) => r.files.filter((f) => f.name === 'model.safetensors').map((f) => f.cached)).sort()).toEqual([false, true]);
  });

  it('a lock left by a dead process is taken over', async () => {
    const dead = spawn(process.execPath, ['-e', '']);
    await new Promise((resolve) => dead.on('close', resolve));
    const etag = sha256(tinyRepo().files['model.safetensors']!);
    const lock = join(cache, '.locks', 'models--test-org--tiny-gpt2', `${etag}.node.lock`);
    mkdirSync(join(lock, '..'), { recursive: true });
    writeFileSync(lock, JSON.stringify({ pid: dead.pid, host: (await import('node:os')).hostname() }));
    await pullModel(REPO);
    expect(existsSync(lock)).toBe(false);
  });

  it('a live lock makes the pull wait; one not refreshed for 30 s counts as stale', async () => {
    const etag = sha256(tinyRepo().files['model.safetensors']!);
    const lock = join(cache, '.locks', 'models--test-org--tiny-gpt2', `${etag}.node.lock`);
    mkdirSync(join(lock, '..'), { recursive: true });
    const holder = JSON.stringify({ pid: process.pid, host: (await import('node:os')).hostname() });
    writeFileSync(lock, holder);
    let settled = false;
    const p = pullModel(REPO).finally(() => (settled = true));
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(settled).toBe(false);
    expect(hub.count('GET', 'cdn')).toBe(0);
    rmSync(lock);
    await p;
    expect(hub.count('GET', 'cdn')).toBe(1);
    rmSync(repoDir(), { recursive: true });
    writeFileSync(lock, holder);
    const old = new Date(Date.now() - 60_000);
    utimesSync(lock, old, old);
    await pullModel(REPO);
    expect(existsSync(lock)).toBe(false);
  });

  it('an AbortSignal stops the download and leaves a partial file to resume', async () => {
    const ac = new AbortController();
    const p = pullModel(REPO, { signal: ac.signal, onProgress: (e) => { if (e.file === 'model.safetensors' && e.bytes > 0 && !e.done) ac.abort(); } });
    await expect(p).rejects.toMatchObject({ name: 'AbortError', code: ErrorCode.Aborted });
    const etag = sha256(tinyRepo().files['model.safetensors']!);
    expect(existsSync(join(repoDir(), 'blobs', `${etag}.incomplete`))).toBe(true);
    await pullModel(REPO);
    expect(hub.requests.filter((q) => q.server === 'cdn').at(-1)!.range).toMatch(/^bytes=\d+-$/);
  });

  describe('gpt2-node pull', () => {
    beforeAll(buildDistIfStale);

    it('prints the snapshot folder, progress on stderr; --json lists the files', async () => {
      const env = { HF_HOME: home, HF_ENDPOINT: hub.url };
      const r = await runCliAsync(['pull', REPO], env);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.trim()).toBe(join(repoDir(), 'snapshots', COMMIT));
      expect(r.stderr).toMatch(/model\.safetensors\s+12\.7 MiB\/12\.7 MiB \(100%\)/);
      const j = await runCliAsync(['pull', REPO, '--json'], env);
      expect(j.code, j.stderr).toBe(0);
      const out = JSON.parse(j.stdout);
      expect(out).toMatchObject({ repo: REPO, revision: 'main', commit: COMMIT, path: join(repoDir(), 'snapshots', COMMIT) });
      expect(out.files).toHaveLength(4);
      expect(out.files.every((f: { cached: boolean }) => f.cached)).toBe(true);
      expect(j.stderr).toMatch(/config\.json: in the cache/);
    });

    it('exit 1 with one line for hub errors, exit 2 for bad ids', async () => {
      const env = { HF_HOME: home, HF_ENDPOINT: hub.url };
      const r = await runCliAsync(['pull', 'test-org/nope'], env);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^gpt2-node: error: test-org\/nope: config\.json: repository not found .*\[ERR_GPT2_FILE_IO\]\n$/);
      const gated = await runCliAsync(['pull', 'test-org/gated'], env);
      expect(gated.code).toBe(1);
      expect(gated.stderr).toMatch(/set HF_TOKEN/);
      for (const args of [['pull', 'a/b/c'], ['pull', REPO, '--revision', '../x'], ['pull']]) {
        const u = await runCliAsync(args, env);
        expect(u.code, args.join(' ')).toBe(2);
        expect(u.stderr).toMatch(/^gpt2-node: /);
      }
      const offline = await runCliAsync(['pull', 'test-org/other'], { ...env, HF_HUB_OFFLINE: '1' });
      expect(offline.code).toBe(1);
      expect(offline.stderr).toMatch(/HF_HUB_OFFLINE/);
      expect(hub.requests.filter((q) => q.path.includes('other'))).toEqual([]);
    });
  });
});
