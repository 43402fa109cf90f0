// A small safetensors reader for the golden files (float32 tensors only): enough for
// tests, independent of the native loader it helps to check.
import { readFileSync } from 'node:fs';

export interface GoldenTensor {
  shape: number[];
  data: Float32Array;
}

export class GoldenFile {
  readonly #bytes: Buffer;
  readonly #header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  readonly #dataStart: number;

  constructor(path: string) {
    this.#bytes = readFileSync(path);
    const n = Number(this.#bytes.readBigUInt64LE(0));
    this.#header = JSON.parse(this.#bytes.subarray(8, 8 + n).toString('utf8'));
    this.#dataStart = 8 + n;
  }

  get(key: string): GoldenTensor {
    const h = this.#header[key];
    if (!h || key === '__metadata__') throw new Error(`golden tensor ${key} not found`);
    if (h.dtype !== 'F32') throw new Error(`golden tensor ${key} is ${h.dtype}, expected F32`);
    const [b, e] = h.data_offsets;
    const raw = this.#bytes.subarray(this.#dataStart + b, this.#dataStart + e);
    // Copy: the slice may not be 4-byte aligned.
    const data = new Float32Array(raw.byteLength / 4);
    new Uint8Array(data.buffer).set(raw);
    return { shape: h.shape, data };
  }
}
