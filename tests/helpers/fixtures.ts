// The golden fixtures (../shared/fixtures, Hugging Face transformers 4.41.2, float32):
// the manifest, its cases, golden tensors by reference, and the tolerance check.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { expect } from 'vitest';
import { GoldenFile } from './safetensors.js';

export const fixtures = resolve(import.meta.dirname, '../../../shared/fixtures');
export const haveFixtures = existsSync(join(fixtures, 'manifest.json'));

export interface Expected { file: string; key: string; shape: number[]; row?: number }
export interface Case {
  id: string; model: string; kind: string;
  input: { input_ids?: number[]; chunks?: number[]; input_ids_unpadded?: number[][]; texts?: string[]; text?: string };
  expected: Record<string, Expected>;
  options?: Record<string, unknown>;
  expected_ids?: { logits_top8_ids?: number[][]; argmax_last?: number; new_tokens?: number[][]; sequences?: number[][] };
  tolerance: { atol: number; rtol: number };
}

export const manifest = haveFixtures ? JSON.parse(readFileSync(join(fixtures, 'manifest.json'), 'utf8')) : { cases: [], models: {} };
export const cases: Case[] = manifest.cases;
export const modelNames = Object.keys(manifest.models) as string[];
export const modelDir = (name: string): string => join(fixtures, manifest.models[name].dir);

const goldens = new Map<string, GoldenFile>();
export function goldenFile(file: string): GoldenFile {
  if (!goldens.has(file)) goldens.set(file, new GoldenFile(join(fixtures, file)));
  return goldens.get(file)!;
}

export function golden(e: Expected): Float32Array {
  const t = goldenFile(e.file).get(e.key);
  expect(t.shape).toEqual(e.shape);
  if (e.row === -1) {
    const width = e.shape[e.shape.length - 1]!;
    return t.data.subarray(t.data.length - width);
  }
  return t.data;
}

/** Max of |got - want| - (atol + rtol |want|): <= 0 passes. Also reports the max abs diff. */
export function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: Case['tolerance'], what: string): void {
  expect(got.length, `${what}: length`).toBe(want.length);
  let worst = 0, at = -1, maxDiff = 0;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i]! - want[i]!);
    maxDiff = Math.max(maxDiff, d);
    const excess = d - (tol.atol + tol.rtol * Math.abs(want[i]!));
    if (!(excess <= worst)) { worst = Number.isNaN(excess) ? Infinity : excess; at = i; }
  }
  expect(worst, `${what}: index ${at} got ${got[at]} want ${want[at]} (max abs diff ${maxDiff})`).toBeLessThanOrEqual(0);
}
