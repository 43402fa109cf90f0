// The GC helper other leak tests rely on really collects.
import { describe, expect, it } from 'vitest';
import { collectGarbage, collectUntil } from './helpers/gc.js';

describe('collectGarbage()', () => {
  it('clears a WeakRef to an unreachable object', async () => {
    let ref: WeakRef<object> | undefined;
    (() => {
      ref = new WeakRef({ payload: new Array(1000).fill(1) });
    })();
    expect(await collectUntil(() => ref!.deref() === undefined)).toBe(true);
  });

  it('runs FinalizationRegistry callbacks', async () => {
    let finalized = 0;
    const registry = new FinalizationRegistry(() => finalized++);
    (() => {
      for (let i = 0; i < 3; i++) registry.register({ i }, i);
    })();
    expect(await collectUntil(() => finalized === 3)).toBe(true);
  });

  it('keeps reachable objects', async () => {
    const kept = { alive: true };
    const ref = new WeakRef(kept);
    await new Promise((r) => setImmediate(r));
    collectGarbage();
    expect(ref.deref()).toBe(kept);
  });
});
