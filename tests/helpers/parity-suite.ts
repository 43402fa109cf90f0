// The golden parity suite (../shared/fixtures: Hugging Face transformers 4.41.2, float32),
// shared by tests/parity.test.ts (CPU) and tests/cusim/parity.test.ts (CUDA under cusim): every
// `forward`, `incremental` and `embed_pool` case of the three tiny models through the public API,
// within each case's tolerance (|got - expected| <= atol + rtol * |expected|); plus the `greedy`
// cases' new token ids from a plain argmax loop over Sequence.append.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Model, type LoadOptions } from '../../lib/index.js';
import { cases, expectClose, golden, haveFixtures, manifest, modelDir, modelNames } from './fixtures.js';

export { cases, expectClose, golden, haveFixtures, manifest } from './fixtures.js';
export type { Case, Expected } from './fixtures.js';

export function strided(all: Float32Array, rows: number, vocab: number): Float32Array {
  const cols = Math.ceil(vocab / 97);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[r * cols + c] = all[r * vocab + c * 97]!;
  return out;
}

export function topk(row: Float32Array, k: number): { ids: number[]; values: number[] } {
  const ids: number[] = [];
  for (let i = 0; i < row.length; i++) {
    if (ids.length < k || row[i]! > row[ids[ids.length - 1]!]!) {
      ids.push(i);
      ids.sort((a, b) => row[b]! - row[a]!);
      if (ids.length > k) ids.pop();
    }
  }
  return { ids, values: ids.map((i) => row[i]!) };
}

/** Every fixture case through the public API, with the models loaded with `options`. */
export function goldenParity(title: string, options: LoadOptions = {}): void {
  describe.skipIf(!haveFixtures)(title, () => {
    const models = new Map<string, Model>();
    beforeAll(async () => {
      for (const name of modelNames) models.set(name, await Model.load(modelDir(name), options));
    });
    afterAll(() => { for (const m of models.values()) m.dispose(); });

    if (options.device && options.device !== 'auto') {
      it(`runs on device '${options.device}'`, () => {
        const want = options.device === 'cuda' ? 'cuda:0' : options.device;
        for (const m of models.values()) expect(m.device).toBe(want);
      });
    }

    it('covers every model and case kind', () => {
      expect(new Set(modelNames)).toEqual(new Set(['tiny', 'tiny_prefixed_lmhead', 'tiny_fp16']));
      for (const kind of ['forward', 'incremental', 'embed_pool']) expect(cases.some((c) => c.kind === kind)).toBe(true);
    });

    for (const c of cases.filter((x) => x.kind === 'forward')) {
      it(`forward ${c.id}`, async () => {
        const m = models.get(c.model)!;
        const ids = c.input.input_ids!;
        const V = m.config.vocab_size, E = m.config.n_embd, T = ids.length;
        const r = await m.forward(new Uint32Array(ids), { logits: 'all', hiddenStates: true });
        const all = r.logits![0]!;
        expect(all.length).toBe(T * V);
        const checked = new Set<string>();
        for (const [name, e] of Object.entries(c.expected)) {
          const want = golden(e);
          if (name === 'logits_full') expectClose(all, want, c.tolerance, name);
          else if (name === 'logits_last') {
            expectClose(all.subarray((T - 1) * V), want, c.tolerance, name);
            // ...and the same through logits: 'last' (the lm_head on one row only).
            const last = await m.forward(new Uint32Array(ids));
            expectClose(last.logits![0]!, want, c.tolerance, `${name} (logits: 'last')`);
          } else if (name === 'logits_strided') expectClose(strided(all, T, V), want, c.tolerance, name);
          else if (name === 'logits_top8_values') {
            const got: number[] = [];
            for (let t = 0; t < T; t++) {
              const row = all.subarray(t * V, (t + 1) * V);
              got.push(...topk(row, 8).values);
              // The expected ids carry the expected values in our logits too (order-free check).
              const wantIds = c.expected_ids!.logits_top8_ids![t]!;
              expectClose(wantIds.map((i) => row[i]!), want.subarray(t * 8, t * 8 + 8), c.tolerance, `${name} at expected ids, row ${t}`);
            }
            expectClose(got, want, c.tolerance, name);
            expect(topk(all.subarray((T - 1) * V), 1).ids[0]).toBe(c.expected_ids!.argmax_last);
          } else if (name === 'last_hidden_state') expectClose(r.lastHiddenState[0]!, want, c.tolerance, name);
          else if (name === 'hidden_states') {
            const hs = r.hiddenStates![0]!;
            expect(hs.length).toBe(m.config.n_layer + 1);
            for (let l = 0; l < hs.length; l++) {
              expectClose(hs[l]!, want.subarray(l * T * E, (l + 1) * T * E), c.tolerance, `hidden_states[${l}]`);
            }
            expect(Array.from(hs[hs.length - 1]!)).toEqual(Array.from(r.lastHiddenState[0]!));
          } else throw new Error(`unhandled expectation ${name}`);
          checked.add(name);
        }
        expect(checked.size).toBe(Object.keys(c.expected).length);
      });
    }

    for (const c of cases.filter((x) => x.kind === 'incremental')) {
      it(`incremental ${c.id}`, async () => {
        const m = models.get(c.model)!;
        const ids = c.input.input_ids!, V = m.config.vocab_size;
        const seq = m.sequence();
        const rows: Float32Array[] = [];
        let at = 0, last: Float32Array | undefined;
        for (const n of c.input.chunks!) {
          const r = await seq.append(new Uint32Array(ids.slice(at, at + n)), { logits: 'all' });
          for (let i = 0; i < n; i++) rows.push(r.logits!.subarray(i * V, (i + 1) * V));
          last = rows[rows.length - 1];
          at += n;
          expect(seq.length).toBe(at);
        }
        const all = new Float32Array(rows.length * V);
        rows.forEach((r, i) => all.set(r, i * V));
        const handled = new Set<string>();
        for (const [name, e] of Object.entries(c.expected)) {
          if (name.startsWith('present_key.') || name.startsWith('present_value.')) {
            // The KV cache contents cannot be read through the public API: checked natively
            // in native/tests/engine_test.cc (tiny_incremental_chunks_and_present_kv).
            handled.add(name);
            continue;
          }
          const want = golden(e);
          if (name === 'logits_last') expectClose(last!, want, c.tolerance, name);
          else if (name === 'logits_strided' || name === 'logits_strided_full_pass') {
            expectClose(strided(all, ids.length, V), want, c.tolerance, name);
          } else throw new Error(`unhandled expectation ${name}`);
          handled.add(name);
        }
        expect(handled.size).toBe(Object.keys(c.expected).length);
        // The last chunk again with logits: 'last', from a sequence truncated back.
        seq.truncate(ids.length - c.input.chunks!.at(-1)!);
        const again = await seq.append(new Uint32Array(ids.slice(ids.length - c.input.chunks!.at(-1)!)));
        expectClose(again.logits!, golden(c.expected.logits_last!), c.tolerance, 'logits_last after truncate + append');
        seq.dispose();
      });
    }

    for (const c of cases.filter((x) => x.kind === 'greedy')) {
      it(`greedy decode loop over Sequence.append ${c.id} (each prompt alone, token ids exactly)`, async () => {
        const m = models.get(c.model)!;
        const eos = m.config.eos_token_id;
        const rows = c.input.input_ids_unpadded!;
        const got = await Promise.all(rows.map(async (prompt) => {
          const seq = m.sequence();
          const out: number[] = [];
          let logits = (await seq.append(new Uint32Array(prompt))).logits!;
          for (let step = 0; step < 20; step++) {
            const next = topk(logits, 1).ids[0]!;
            out.push(next);
            if (next === eos) break;
            logits = (await seq.append([next])).logits!;
          }
          seq.dispose();
          return out;
        }));
        expect(got).toEqual(c.expected_ids!.new_tokens);
      });
    }

    for (const c of cases.filter((x) => x.kind === 'embed_pool')) {
      it(`embed_pool ${c.id} (pooled = mean of lastHiddenState, each text alone)`, async () => {
        const m = models.get(c.model)!;
        const E = m.config.n_embd;
        const texts = c.input.input_ids_unpadded!;
        const r = await m.forward(texts.map((t) => new Uint32Array(t)), { logits: 'none' });
        expect(r.logits).toBeUndefined();
        const pooled = new Float32Array(texts.length * E);
        texts.forEach((t, i) => {
          const h = r.lastHiddenState[i]!;
          expect(h.length).toBe(t.length * E);
          for (let p = 0; p < t.length; p++) for (let d = 0; d < E; d++) pooled[i * E + d]! += h[p * E + d]! / t.length;
        });
        expectClose(pooled, golden(c.expected.pooled!), c.tolerance, 'pooled');
      });
    }
  });
}
