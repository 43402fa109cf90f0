// Forces a full garbage collection from a test, for leak and finalizer tests.
// `--expose-gc` cannot go in execArgv under vitest's thread pool (ERR_WORKER_INVALID_EXEC_ARGV,
// TOOLCHAIN.md pitfall 8), so the flag is set at run time and `gc` taken from a new context.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gcFn: (() => void) | undefined;

/** Runs a full GC. Await a macrotask first if the objects were created in the current job:
 * WeakRef targets stay alive until the job ends. */
export function collectGarbage(): void {
  if (!gcFn) {
    setFlagsFromString('--expose-gc');
    gcFn = runInNewContext('gc') as () => void;
  }
  gcFn();
}

/** Collects garbage until `done()` holds (finalizers run asynchronously), at most `rounds` times. */
export async function collectUntil(done: () => boolean, rounds = 20): Promise<boolean> {
  for (let i = 0; i < rounds; i++) {
    await new Promise((r) => setImmediate(r));
    collectGarbage();
    if (done()) return true;
  }
  await new Promise((r) => setImmediate(r));
  return done();
}
