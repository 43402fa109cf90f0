// Worker for bench/tokenizer.mjs: runs one peer tokenizer on a share of the batch, so
// peers without a parallel batch API are measured on 2 threads too.
import { parentPort, workerData } from 'node:worker_threads';

let encode;
if (workerData.impl === 'tiktoken (wasm)') {
  const { get_encoding } = await import('tiktoken');
  const enc = get_encoding('gpt2');
  encode = (s) => enc.encode_ordinary(s);
} else if (workerData.impl === 'js-tiktoken') {
  const { getEncoding } = await import('js-tiktoken');
  const enc = getEncoding('gpt2');
  encode = (s) => enc.encode(s);
} else {
  const gt = await import('gpt-tokenizer/encoding/r50k_base');
  encode = (s) => gt.encode(s);
}
parentPort.on('message', (texts) => {
  const out = texts.map((s) => Uint32Array.from(encode(s)));
  parentPort.postMessage(out, out.map((a) => a.buffer));
});
parentPort.postMessage('ready');
