// The engines every side-by-side bench can run, as child-process definitions for harness.mjs.
// Paths: the shared random GPT-2 124M weights written by bench/setup-peers.sh into bench/.peers/.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const ROOT = resolve(BENCH, '..');
export const PEERS_OUT = join(BENCH, '.peers');
export const PEERS_SRC = resolve(process.env.GPT2_PEERS_DIR ?? join(ROOT, '..', 'shared', 'peers'));
export const paths = {
  hf: join(PEERS_OUT, 'hf'),
  onnx: join(PEERS_OUT, 'onnx'),
  gguf: (type) => join(PEERS_OUT, 'gguf', `gpt2-${type}.gguf`),
};

const need = (path, what) => (existsSync(path) ? null : `${what} missing (${path}): run bench/setup-peers.sh`);

/**
 * GPT-2 124M engines: gpt2-node f32/bf16, onnxruntime-node fp32, node-llama-cpp f32/f16/bf16, PyTorch fp32/bf16.
 * ids: optional list to keep (e.g. ['ort-f32', 'llama-f32']). Each child runs bench/engines/<file>.
 */
export function cpuEngines({ threads = 2, ids } = {}) {
  const env = { OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
  const node = (file) => ({ command: process.execPath, args: [join(BENCH, 'engines', file)], env });
  const engines = [
    ...['float32', 'bfloat16'].map((dtype) => ({
      id: `gpt2-node-${dtype === 'float32' ? 'f32' : 'bf16'}`, label: `gpt2-node ${dtype}`,
      spawn: node('gpt2node.mjs'), load: { dir: paths.hf, dtype, threads },
      unavailable: need(join(paths.hf, 'model.safetensors'), 'HF folder'),
    })),
    {
      id: 'ort-f32', label: 'onnxruntime-node fp32',
      spawn: node('ort.mjs'), load: { onnxDir: paths.onnx, threads },
      unavailable: need(join(paths.onnx, 'gpt2_kv.onnx'), 'ONNX files'),
    },
    ...['f32', 'f16', 'bf16'].map((type) => ({
      id: `llama-${type}`, label: `node-llama-cpp ${type}`,
      spawn: node('llama.mjs'), load: { ggufPath: paths.gguf(type), threads },
      unavailable: need(paths.gguf(type), `GGUF ${type}`),
    })),
    ...['float32', 'bfloat16'].map((dtype) => ({
      id: `torch-${dtype === 'float32' ? 'f32' : 'bf16'}`, label: `PyTorch ${dtype === 'float32' ? 'fp32' : 'bf16'}`,
      spawn: { command: '/usr/bin/python3', args: [join(BENCH, 'engines', 'torch_child.py')], env },
      load: { peersDir: PEERS_SRC, dtype, threads },
      unavailable: existsSync('/usr/bin/python3') ? null : 'no /usr/bin/python3',
    })),
  ];
  if (!ids) return engines;
  const keep = new Set(ids);
  const unknown = [...keep].filter((id) => !engines.some((e) => e.id === id));
  if (unknown.length) throw new Error(`unknown engine id(s) ${unknown.join(', ')}; known: ${engines.map((e) => e.id).join(', ')}`);
  return engines.filter((e) => keep.has(e.id));
}
