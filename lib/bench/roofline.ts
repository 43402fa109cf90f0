// How close a CUDA row comes to the GPU's ceilings: decode at batch 1 against memory bandwidth
// (weight bytes streamed per token), prefill against the bf16 tensor-core peak. Reported by
// `gpt2-node bench` for every CUDA row (this replaces the former bench/gpu.mjs).
import type { GPT2Config } from '../model.js';
import { metricId, type BenchSettings, type Metrics } from './measure.js';

/** Dense peaks from the vendors' sheets: HBM GB/s and bf16 tensor-core TFLOP/s (no sparsity). */
const GPU_PEAKS: [RegExp, number, number][] = [
  [/H200/, 4800, 989], [/H100.*(SXM|HBM3)/, 3350, 989], [/H100/, 2000, 756], [/A100.*80/, 2039, 312],
  [/A100/, 1555, 312], [/L4\b/, 300, 121], [/4090/, 1008, 165],
];

export interface GpuPeaks {
  gbs: number;
  tflops: number;
}

/** The peaks of a device by name; null when unknown (and for the cusim emulator, whose name says H100-like). */
export function gpuPeaks(deviceName: string): GpuPeaks | null {
  if (/cusim/.test(deviceName)) return null;
  const p = GPU_PEAKS.find(([re]) => re.test(deviceName));
  return p ? { gbs: p[1], tflops: p[2] } : null;
}

export interface Roofline {
  /** Weight bytes read per decode step x decode tokens/s at batch 1, in GB/s. */
  decodeGBs: number | null;
  /** Prefill FLOP/s achieved, in TFLOP/s. */
  prefillTflops: number | null;
  /** The device's peaks when known, and the fractions of them reached. */
  peaks: GpuPeaks | null;
  decodeBandwidthFraction: number | null;
  prefillTensorFraction: number | null;
}

export function roofline(metrics: Metrics, config: GPT2Config, s: Pick<BenchSettings, 'promptTokens'>, peaks: GpuPeaks | null): Roofline {
  const weights = metrics[metricId.weights];
  const decode1 = metrics[metricId.decode(1)];
  const prefill = metrics[metricId.prefill];
  const e = config.n_embd;
  // Decode at batch 1 streams every packed GEMM weight (lm_head included) once per token; the fp32
  // wte/wpe tables are read a row at a time, so they are left out of the bytes per step.
  const streamed = weights != null ? weights - 4 * (config.vocab_size + config.n_positions) * e : null;
  const decodeGBs = streamed != null && decode1 != null ? (streamed * decode1) / 1e9 : null;
  // FLOPs per prefill token: 2 x GEMM parameters (lm_head only for each prompt's last token) plus
  // causal attention (2 x 2 x layers x P/2 x E).
  const gemmParams = config.n_layer * 12 * e * e + (config.vocab_size * e) / s.promptTokens;
  const flopsPerToken = 2 * gemmParams + 2 * config.n_layer * s.promptTokens * e;
  const prefillTflops = prefill != null ? (prefill * flopsPerToken) / 1e12 : null;
  return {
    decodeGBs,
    prefillTflops,
    peaks,
    decodeBandwidthFraction: peaks && decodeGBs != null ? decodeGBs / peaks.gbs : null,
    prefillTensorFraction: peaks && prefillTflops != null ? prefillTflops / peaks.tflops : null,
  };
}
