// A deterministic, varied text corpus for the tokenizer: the parity tests compare our
// ids with tiktoken's on it, and bench/tokenizer.mjs measures throughput on it.
// Same seed, same texts, on every machine.

/** Small seeded PRNG (mulberry32). */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = `the of and to in is was that for it with as his on be at by had are but from or have an they which
one you were her all she there would their we him been has when who will more no if out so said what up its about
into than them can only other new some could time these two may then do first any my now such like our over man me
even most made after also did many before must through back years where much your way well down should because
each just those people Mr how too little state good very make world still own see men work long get here between
both life being under never day same another know while last might us great old year off come since against go
came right used take three Government anti-disestablishmentarianism naïve café résumé coöperate façade Zürich
don't can't won't I'm you're they've we'll she'd it's DON'T CAN'T I'M YOU'RE THEY'VE WE'LL SHE'D IT'S O'Neill
rock'n'roll ma'am 'twas y'all`.split(/\s+/);

const CODE = [
  `function fib(n) {\n  if (n < 2) return n;\n  return fib(n - 1) + fib(n - 2);\n}\nconsole.log(fib(30));\n`,
  `def tokenize(text: str) -> list[int]:\n    """Split text."""\n    return [ord(c) for c in text if c != '\\n']\n\n\nif __name__ == "__main__":\n\tprint(tokenize("hi"))\n`,
  `#include <stdio.h>\nint main(void) {\n\tfor (int i = 0; i < 10; ++i) {\n\t\tprintf("%d\\n", i * i);\n\t}\n\treturn 0;\n}\n`,
  `SELECT u.id, COUNT(*) AS n FROM users u JOIN posts p ON p.user_id = u.id WHERE u.created_at >= '2024-01-01' GROUP BY u.id HAVING n > 3;`,
  `<div class="container">\r\n  <a href="https://example.com/path?q=1&amp;r=2#frag">link</a>\r\n</div>\r\n`,
  `const re = /^(?:[a-z0-9!#$%&'*+/=?^_\`{|}~-]+)@example\\.com$/i; // email\nlet x = a?.b ?? c; x ||= 0x1F; y >>>= 2;\n`,
  `{"name": "gpt2-node", "version": "0.1.0", "scripts": {"test": "vitest run"}, "n": [1, 2.5e-3, -7, null, true]}`,
  `    \t  mixed   indentation\n\n\n\t\t\n   trailing spaces   \n`,
];

const SCRIPTS = [
  '我们今天去公园散步，天气很好。人工智能正在改变世界！',
  '日本語のテキストとカタカナ、ひらがな、漢字が混ざっています。東京タワー',
  '한국어 텍스트입니다. 안녕하세요, 세계!',
  'Привет, мир! Съешь же ещё этих мягких французских булок.',
  'Γειά σου Κόσμε! Ξεσκεπάζω την ψυχοφθόρα βδελυγμία.',
  'مرحبا بالعالم! هذا نص عربي مع أرقام ١٢٣ و 456.',
  'שלום עולם! זהו טקסט בעברית עם מספרים 789.',
  'नमस्ते दुनिया! यह हिंदी पाठ है।',
  'สวัสดีชาวโลก ภาษาไทยไม่มีช่องว่างระหว่างคำ',
  'Tiếng Việt có nhiều dấu: Nguyễn, Đà Nẵng, phở.',
  'e\u0301 a\u0308 n\u0303 Z\u0324\u0354\u0367\u0311\u0313a\u0356\u032d\u0308\u0307l\u036e\u0312\u036bg\u0317\u0355\u034ao\u0358',
  '👍 👍🏽 👍🏿 👨‍👩‍👧‍👦 🧑🏽‍💻 🏳️‍🌈 🇺🇸🇯🇵 1️⃣ ❤️‍🔥 🫠 😀😃😄😁',
  '½ ² ³ Ⅻ ⅻ ① ⑳ ٣٤٥ ৩৪ ௫ 𝟙𝟚𝟛 ⁴²',
  '\u0000\u0001\u0002\u0007\u0008\u000b\u000c\u001b\u001c\u001d\u001e\u001f\u007f\u0080\u0085\u009f',
  'a\u00a0b\u1680c\u2000d\u200ae\u2028f\u2029g\u202fh\u205fi\u3000j\u180ek\u200bl\ufeffm\u0085n',
  'lone \ud800 surrogates \udfff here \ud83d and at the end \ud83d',
  '<|endoftext|>Hello<|endoftext|> <|endoftext|>\n<|endoftext|><|endof',
];

const SPACES = [' ', '  ', '   ', '\t', '\n', '\n\n', '\r\n', ' \n', '\n ', '\t\t', '\u00a0', '\u3000', '\u0085',
  '\u2028', '\ufeff', '\u200b', '\u000b', '\u000c', '\r'];

function pick(r, arr) {
  return arr[Math.floor(r() * arr.length)];
}

function prose(r, words) {
  let s = '';
  for (let i = 0; i < words; i++) {
    let w = pick(r, WORDS);
    if (r() < 0.08) w = w[0].toUpperCase() + w.slice(1);
    s += (i && r() < 0.93 ? ' ' : '') + w;
    const p = r();
    if (p < 0.06) s += ',';
    else if (p < 0.09) s += '.';
    else if (p < 0.1) s += '?!';
    else if (p < 0.11) s += ` (${Math.floor(r() * 100000)})`;
    else if (p < 0.115) s += '\n\n';
    else if (p < 0.12) s += ` "${pick(r, WORDS)}"`;
    else if (p < 0.125) s += ` ${(r() * 1e6).toFixed(2)}%`;
  }
  return s;
}

function whitespaceMix(r, parts) {
  let s = '';
  for (let i = 0; i < parts; i++) {
    s += pick(r, SPACES);
    if (r() < 0.7) s += r() < 0.5 ? pick(r, WORDS) : pick(r, ['!', '123', '...', "'s", "'", '-', '😀', '中文', 'é']);
  }
  return s;
}

function numbers(r, n) {
  let s = '';
  for (let i = 0; i < n; i++) {
    const k = r();
    if (k < 0.3) s += Math.floor(r() * 10 ** Math.floor(r() * 12));
    else if (k < 0.5) s += (r() * 1000).toFixed(Math.floor(r() * 6));
    else if (k < 0.6) s += '1,000,000';
    else if (k < 0.7) s += '3.14159e-10';
    else if (k < 0.8) s += '0x' + Math.floor(r() * 2 ** 31).toString(16);
    else s += `${Math.floor(r() * 12 + 1)}/${Math.floor(r() * 28 + 1)}/20${Math.floor(r() * 90 + 10)}`;
    s += pick(r, [' ', '', ', ', '\n', '-', 'th ', 'km ']);
  }
  return s;
}

const RANGES = [
  [0x20, 0x7e, 40], [0x00, 0x1f, 3], [0xa0, 0xff, 6], [0x100, 0x24f, 6], [0x300, 0x36f, 4], [0x370, 0x3ff, 3],
  [0x400, 0x4ff, 4], [0x590, 0x6ff, 4], [0x900, 0x97f, 2], [0xe00, 0xe7f, 2], [0x2000, 0x206f, 4],
  [0x3000, 0x30ff, 4], [0x4e00, 0x9fff, 5], [0xac00, 0xd7a3, 3], [0xd800, 0xdfff, 2], [0xe000, 0xf8ff, 1],
  [0xfe00, 0xffff, 2], [0x10000, 0x10ffff, 3], [0x1f300, 0x1faff, 5],
];
const RANGE_TOTAL = RANGES.reduce((a, x) => a + x[2], 0);

function randomCodePoint(r) {
  let k = r() * RANGE_TOTAL;
  for (const [lo, hi, w] of RANGES) {
    if ((k -= w) < 0) return lo + Math.floor(r() * (hi - lo + 1));
  }
  return 0x20;
}

/** Random code points (lone surrogates included, as UTF-16 units). */
export function randomUnicode(r, len) {
  let s = '';
  for (let i = 0; i < len; i++) {
    const cp = randomCodePoint(r);
    s += cp >= 0xd800 && cp <= 0xdfff ? String.fromCharCode(cp) : String.fromCodePoint(cp);
  }
  return s;
}

/** Every BMP code point, in chunks of `size` consecutive code points (surrogates as lone units). */
export function bmpChunks(size = 256) {
  const out = [];
  for (let lo = 0; lo < 0x10000; lo += size) {
    let s = '';
    for (let cp = lo; cp < lo + size; cp++) s += String.fromCharCode(cp);
    out.push(s);
    // The same characters separated by spaces and letters, to exercise ` ?X` pieces.
    let t = '';
    for (let cp = lo; cp < lo + size; cp += 3) t += String.fromCharCode(cp) + (cp % 2 ? ' ' : 'a ');
    out.push(t);
  }
  return out;
}

/** The varied corpus: [{ group, text }]. */
export function tokenizerCorpus(seed = 1234) {
  const r = prng(seed);
  const out = [];
  for (let i = 0; i < 300; i++) out.push({ group: 'prose', text: prose(r, 5 + Math.floor(r() * 200)) });
  for (const c of CODE) out.push({ group: 'code', text: c });
  for (let i = 0; i < 100; i++) {
    let s = '';
    for (let k = 0; k < 4; k++) s += pick(r, CODE) + pick(r, SPACES);
    out.push({ group: 'code', text: s });
  }
  for (let i = 0; i < 300; i++) out.push({ group: 'whitespace', text: whitespaceMix(r, 1 + Math.floor(r() * 30)) });
  for (let i = 0; i < 100; i++) out.push({ group: 'numbers', text: numbers(r, 1 + Math.floor(r() * 40)) });
  for (const s of SCRIPTS) out.push({ group: 'scripts', text: s });
  for (let i = 0; i < 200; i++) {
    let s = '';
    for (let k = 0; k < 3; k++) s += pick(r, SCRIPTS) + pick(r, SPACES) + prose(r, 5);
    out.push({ group: 'mixed', text: s });
  }
  for (let i = 0; i < 1500; i++) out.push({ group: 'random', text: randomUnicode(r, Math.floor(r() * 120)) });
  for (let i = 0; i < 300; i++) {
    // Random strings of ASCII-heavy characters: many spaces, apostrophes and digits.
    let s = '';
    const n = Math.floor(r() * 80);
    for (let k = 0; k < n; k++) s += pick(r, [' ', ' ', "'", 's', 't', 'r', 'e', 'l', 'd', 'S', 'M', '1', '\n', '\t', '!', 'a', 'é', '\u00a0']);
    out.push({ group: 'apostrophes', text: s });
  }
  out.push({ group: 'edge', text: '' });
  out.push({ group: 'edge', text: ' ' });
  out.push({ group: 'edge', text: "'" });
  out.push({ group: 'edge', text: "'s" });
  out.push({ group: 'edge', text: ' '.repeat(1000) + 'x' + '\n'.repeat(500) });
  out.push({ group: 'edge', text: 'a'.repeat(3000) });
  out.push({ group: 'edge', text: '1'.repeat(2000) + ' ' + '!'.repeat(500) });
  return out;
}

/** English-like text of about `bytes` bytes, for throughput measurements. */
export function benchText(bytes, seed = 7) {
  const r = prng(seed);
  const parts = [];
  let size = 0;
  while (size < bytes) {
    const k = r();
    const s = k < 0.7 ? prose(r, 100) + '\n\n' : k < 0.85 ? pick(r, CODE) : k < 0.95 ? pick(r, SCRIPTS) + ' ' : numbers(r, 10);
    parts.push(s);
    size += Buffer.byteLength(s);
  }
  return parts.join('');
}

/** `count` short strings (chat messages, titles, lines), for the batch benchmark. */
export function shortTexts(count, seed = 99) {
  const r = prng(seed);
  const out = [];
  for (let i = 0; i < count; i++) {
    const k = r();
    out.push(k < 0.8 ? prose(r, 3 + Math.floor(r() * 30)) : k < 0.9 ? numbers(r, 3) : pick(r, SCRIPTS).slice(0, 30));
  }
  return out;
}
