export function prng(seed: number): () => number;
export function randomUnicode(r: () => number, len: number): string;
export function bmpChunks(size?: number): string[];
export function tokenizerCorpus(seed?: number): { group: string; text: string }[];
export function benchText(bytes: number, seed?: number): string;
export function shortTexts(count: number, seed?: number): string[];
