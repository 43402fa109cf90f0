// Model.embed({ signal }): an abort rejects the call with ERR_GPT2_ABORTED and drops its queued
// texts from the engine (the next call does not wait behind them), before or during the work.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, Model } from '../lib/index.js';
import { maxAbsDiff } from './helpers/arrays.js';

describe('Model.embed with an AbortSignal', () => {
  let model: Model;
  beforeAll(async () => {
    model = await Model.random({ n_layer: 2 }); // gpt2 width: a long job takes many steps
  });
  afterAll(() => model?.dispose());

  // 64 texts of 1000 tokens: 32 engine steps or more (a step takes at most 2048 tokens).
  const bigJob = () => Array.from({ length: 64 }, (_, i) => Uint32Array.from({ length: 1000 }, (_, p) => (i * 31 + p * 7) % 50000));

  it('an abort during the work rejects with ERR_GPT2_ABORTED and drops the queued texts', async () => {
    const want = await model.embed(['after the abort']);
    const controller = new AbortController();
    const stepsBefore = model.engineStats.steps;
    const big = model.embed(bigJob(), { signal: controller.signal });
    const outcome = big.then(() => 'resolved', (e: { code?: string }) => e.code);
    // Let the engine start on it, then abort.
    while (model.engineStats.steps < stepsBefore + 2) await new Promise((r) => setTimeout(r, 5));
    controller.abort();
    expect(await outcome).toBe(ErrorCode.Aborted);
    const stepsAtAbort = model.engineStats.steps;
    // The next call runs at once: only a step or two in flight at the abort ran before it.
    const got = await model.embed(['after the abort']);
    expect(maxAbsDiff(got[0]!, want[0]!)).toBeLessThanOrEqual(1e-5);
    expect(model.engineStats.steps - stepsAtAbort).toBeLessThan(5);
    expect(stepsAtAbort - stepsBefore).toBeLessThan(32); // not the whole job
  });

  it('an already aborted signal rejects before any engine work; an abort after the result changes nothing', async () => {
    const controller = new AbortController();
    controller.abort();
    const steps = model.engineStats.steps;
    await expect(model.embed(['x', 'y'], { signal: controller.signal })).rejects.toMatchObject({ code: ErrorCode.Aborted });
    await expect(model.embed([Uint32Array.of(1, 2)], { signal: controller.signal })).rejects.toMatchObject({ code: ErrorCode.Aborted });
    expect(model.engineStats.steps).toBe(steps);
    const late = new AbortController();
    const v = await model.embed(['fine'], { signal: late.signal });
    late.abort();
    expect(v).toHaveLength(1);
  });

  it('signal must be an AbortSignal', async () => {
    await expect(model.embed(['x'], { signal: {} as AbortSignal })).rejects.toMatchObject({ name: 'TypeError', code: ErrorCode.InvalidArg });
  });
});
