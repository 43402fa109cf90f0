#!/usr/bin/python3
"""PyTorch child for bench/engine.mjs: the plain GPT-2 module of ../shared/peers/gpt2_torch.py, the same random
weights. Protocol as bench/lib/child.mjs: JSON-line commands on stdin, JSON-line replies on fd 3.
Prefill = module(ids) -> last hidden state; decode = hidden(..., past) with its concatenating KV cache, greedy.
bfloat16 = the module cast to torch.bfloat16 (weights and activations)."""
import json, os, sys, time, traceback

reply_fd = os.fdopen(3, 'w', buffering=1)
def reply(msg): reply_fd.write(json.dumps(msg) + '\n'); reply_fd.flush()

def memory():
    out = {}
    for line in open('/proc/self/status'):
        k, _, v = line.partition(':')
        if k in ('VmHWM', 'VmRSS'): out['peakRss' if k == 'VmHWM' else 'rss'] = int(v.split()[0]) * 1024
    return out

def token_id(b, t, vocab=50000): return (b * 104729 + t * 7919 + 13) % vocab   # = bench/lib/child.mjs tokenIds

class Unavailable(Exception): pass
torch = model = None
warmed = set()

def rows(batch, tokens, offset_per_row=0):
    return torch.tensor([[token_id(b, t + b * offset_per_row) for t in range(tokens)] for b in range(batch)], dtype=torch.long)

def load(msg):
    global torch, model
    try:
        import torch as t; torch = t
    except Exception as e: raise Unavailable('python3-torch not installed (bench/setup-peers.sh): %s' % e)
    torch.set_num_threads(msg['threads'])
    try: torch.set_num_interop_threads(1)
    except RuntimeError: pass
    sys.path.insert(0, msg['peersDir'])
    from gpt2_torch import load_random
    model = load_random()
    if msg['dtype'] == 'bfloat16': model = model.to(torch.bfloat16)
    elif msg['dtype'] != 'float32': raise Unavailable('dtype %s' % msg['dtype'])
    torch.ones(64, 64) @ torch.ones(64, 64)      # loads the BLAS; Debian's torch uses the system libblas.so.3
    libs = open('/proc/self/maps').read()
    blas = next((name for key, name in [('openblas', 'OpenBLAS'), ('libmkl', 'MKL'), ('blis', 'BLIS'), ('/blas/libblas', 'reference BLAS (slow)')]
                 if key in libs), 'unknown BLAS')
    return {'version': torch.__version__, 'blas': blas, 'mkldnn': torch.backends.mkldnn.is_available(),
            'threads': torch.get_num_threads()}

def prefill(msg):
    batch, tokens, reps = msg['batch'], msg['tokens'], msg.get('reps', 1)
    ids = rows(batch, tokens)
    with torch.inference_mode():
        if 'prefill' not in warmed: model(rows(1, min(tokens, 16))); warmed.add('prefill')   # once, small
        seconds = []
        for _ in range(reps):
            t0 = time.perf_counter(); model(ids); seconds.append(time.perf_counter() - t0)
    return {'seconds': seconds, 'tokens': batch * tokens}

def decode_once(batch, prompt, steps, max_seconds=float('inf')):   # stops early after max_seconds
    with torch.inference_mode():
        h, past = model.hidden(rows(batch, prompt, 31))
        nxt = model.logits(h[:, -1:]).argmax(-1)          # [B, 1]
        pos = prompt
        t0 = time.perf_counter()
        while pos - prompt < steps and time.perf_counter() - t0 < max_seconds:
            h, past = model.hidden(nxt, pos0=pos, past=past)
            nxt = model.logits(h[:, -1:]).argmax(-1); pos += 1
        return time.perf_counter() - t0, batch * (pos - prompt)

def decode(msg):
    batch, prompt, steps, reps = msg['batch'], msg['prompt'], msg['steps'], msg.get('reps', 1)
    if 'decode' not in warmed: decode_once(1, prompt, 2); warmed.add('decode')
    runs = [decode_once(batch, prompt, steps, msg.get('maxSeconds') or float('inf')) for _ in range(reps)]
    return {'seconds': [r[0] for r in runs], 'tokens': [r[1] for r in runs]}

def embed_length(i, lo, hi): return lo + (i * 7919 + 13) % (hi - lo + 1)   # = bench/lib/child.mjs embedLength

def padded_batches(lengths, max_tokens):   # = bench/lib/child.mjs paddedBatches
    batches, cur = [], []
    for i in sorted(range(len(lengths)), key=lambda i: (lengths[i], i)):
        if cur and (len(cur) + 1) * lengths[i] > max_tokens: batches.append(cur); cur = []
        cur.append(i)
    if cur: batches.append(cur)
    return batches

def embed_all(texts):   # length-sorted right-padded batches (<= 2048 padded tokens), mean over real rows
    out = [None] * len(texts)
    with torch.inference_mode():
        for batch in padded_batches([len(t) for t in texts], 2048):
            T = len(texts[batch[-1]])
            ids = torch.tensor([texts[i] + [0] * (T - len(texts[i])) for i in batch], dtype=torch.long)
            h = model(ids)
            for b, i in enumerate(batch): out[i] = h[b, :len(texts[i])].float().mean(0)
    return out

def embed(msg):
    count, lo, hi, reps = msg['count'], msg['minTokens'], msg['maxTokens'], msg.get('reps', 1)
    if 'embed' not in warmed: embed_all([[token_id(i, t) for t in range(8 + i)] for i in range(4)]); warmed.add('embed')
    texts = [[token_id(i, t) for t in range(embed_length(i, lo, hi))] for i in range(count)]
    seconds = []
    for _ in range(reps):
        t0 = time.perf_counter(); vecs = embed_all(texts); seconds.append(time.perf_counter() - t0)
    return {'seconds': seconds, 'tokens': sum(len(t) for t in texts), 'texts': count, 'dim': int(vecs[0].shape[0])}

handlers = {'load': load, 'prefill': prefill, 'decode': decode, 'embed': embed, 'memory': lambda m: memory()}
for line in sys.stdin:
    if not line.strip(): continue
    msg = json.loads(line)
    if msg['op'] == 'exit': reply({'ok': True}); break
    try:
        h = handlers.get(msg['op'])
        if h is None: reply({'ok': False, 'error': 'unknown op %s' % msg['op']}); continue
        reply(dict(ok=True, **h(msg)))
    except Unavailable as e: reply({'ok': False, 'unavailable': str(e)})
    except Exception: reply({'ok': False, 'error': traceback.format_exc()})
