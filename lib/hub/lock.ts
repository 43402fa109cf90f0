// A lock file so two processes (or two calls in one process) downloading the same blob do
// not write the same .incomplete file at once. Created with O_EXCL; the holder refreshes its
// mtime while it works, so a lock left by a crashed process is taken over (dead pid on this
// host, or not refreshed for STALE_MS). huggingface_hub locks with flock(), which Node lacks:
// this lock excludes gpt2-node processes only, so it has its own name.
import { open, readFile, stat, unlink, utimes, mkdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { abortError } from './http.js';

const REFRESH_MS = 5_000;
const STALE_MS = 30_000;
const POLL_MS = 100;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function isStale(path: string): Promise<boolean> {
  try {
    const [text, st] = await Promise.all([readFile(path, 'utf8'), stat(path)]);
    if (Date.now() - st.mtimeMs > STALE_MS) return true;
    const holder = JSON.parse(text) as { pid?: unknown; host?: unknown };
    return holder.host === hostname() && typeof holder.pid === 'number' && !pidAlive(holder.pid);
  } catch {
    return false; // gone already, or being written: look again on the next poll
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const onAbort = () => {
      clearTimeout(t);
      reject(abortError(signal!));
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Runs `fn` holding the lock file at `path` (waits while another holder is alive). */
export async function withLock<T>(path: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  await mkdir(dirname(path), { recursive: true });
  for (;;) {
    if (signal?.aborted) throw abortError(signal);
    try {
      const fh = await open(path, 'wx');
      await fh.writeFile(JSON.stringify({ pid: process.pid, host: hostname() }));
      await fh.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    if (await isStale(path)) await unlink(path).catch(() => {});
    else await sleep(POLL_MS, signal);
  }
  const refresh = setInterval(() => {
    const now = new Date();
    utimes(path, now, now).catch(() => {});
  }, REFRESH_MS);
  refresh.unref();
  try {
    return await fn();
  } finally {
    clearInterval(refresh);
    await unlink(path).catch(() => {});
  }
}
