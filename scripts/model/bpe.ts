/**
 * A BPE vocabulary trained from scratch, stored in llama.cpp's SPM ("llama") tokenizer
 * format, plus an encoder that mirrors `llm_tokenizer_spm` token for token so tests
 * and scripts can predict exactly what llama.cpp will feed the model.
 */

/** Token types as stored in `tokenizer.ggml.token_type` (llama.cpp `llama_token_type`). */
export const TokenType = {
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;

export interface Vocabulary {
  tokens: string[];
  scores: number[];
  types: number[];
  unkId: number;
  bosId: number;
  /** `<|end|>` when it is a control token (else the last one, else `</s>`): it ends a turn. */
  eosId: number;
  /** Value for `tokenizer.ggml.add_space_prefix`; must be written explicitly (see below). */
  addSpacePrefix: boolean;
}

export interface TrainBpeOptions {
  /** Total number of tokens; the tail is padded with UNUSED tokens if the text runs out of merges. */
  vocabSize: number;
  /** Control tokens after `<unk>`, `<s>`, `</s>`; `<|end|>` (or the last one) becomes `eosId`. */
  controlTokens: string[];
  /** Pairs seen fewer times than this are never merged (they would only memorise noise). */
  minPairCount?: number;
}

export interface EncodeOptions {
  /** Recognise control-token texts in `text`, like llama.cpp's `parse_special`. */
  parseSpecial: boolean;
  /** Prepend BOS, like llama.cpp's `add_special` for a llama vocabulary. */
  addBos?: boolean;
}

export interface DecodeOptions {
  /** Leave out control and unknown tokens instead of printing their text. */
  skipSpecial?: boolean;
}

const SPACE_MARK = "\u2581";
const BYTE_TOKEN_COUNT = 256;

function byteTokenText(byte: number): string {
  // Upper-case hex is what llama.cpp's byte_to_token looks up.
  return `<0x${byte.toString(16).toUpperCase().padStart(2, "0")}>`;
}

function escapeSpaces(text: string): string {
  // Only U+0020 becomes ▁, exactly like llama_escape_whitespace; tabs and newlines stay.
  return text.replaceAll(" ", SPACE_MARK);
}

/**
 * Replaces lone surrogates with U+FFFD: that is what the UTF-8 bytes handed to llama.cpp
 * contain, so the code-point view here must agree with its byte view.
 */
function wellFormed(text: string): string {
  return text.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, "\uFFFD");
}

interface Fragment {
  text: string | null;
  token: number;
}

/** Ids of control, unknown and user-defined tokens, longest text first, as llama.cpp orders its special-token cache. */
function specialTokenOrder(vocab: Vocabulary): number[] {
  const ids: number[] = [];
  vocab.types.forEach((type, id) => {
    if (type === TokenType.CONTROL || type === TokenType.UNKNOWN || type === TokenType.USER_DEFINED) ids.push(id);
  });
  // llama.cpp uses an unstable sort by length only; ties on length are broken by id here
  // so the result is defined (our special tokens all differ in length anyway).
  return ids.sort((a, b) => (vocab.tokens[b]?.length ?? 0) - (vocab.tokens[a]?.length ?? 0) || a - b);
}

/** Mirrors `tokenizer_st_partition`: splits raw text around special-token texts. */
function partition(
  vocab: Vocabulary,
  specialOrder: readonly number[],
  text: string,
  parseSpecial: boolean,
): Fragment[] {
  let fragments: Fragment[] = [{ text, token: -1 }];
  for (const id of specialOrder) {
    const type = vocab.types[id];
    // Without parse_special only user-defined tokens are split out, as in llama.cpp.
    if (!parseSpecial && (type === TokenType.CONTROL || type === TokenType.UNKNOWN)) continue;
    const special = vocab.tokens[id] ?? "";
    if (special === "") continue;
    const next: Fragment[] = [];
    for (const fragment of fragments) {
      if (fragment.text === null) {
        next.push(fragment);
        continue;
      }
      const parts = fragment.text.split(special);
      parts.forEach((part, i) => {
        if (i > 0) next.push({ text: null, token: id });
        if (part !== "") next.push({ text: part, token: -1 });
      });
    }
    fragments = next;
  }
  return fragments;
}

interface VocabIndex {
  byText: Map<string, number>;
  byteIds: number[];
  specialOrder: number[];
}

const indexCache = new WeakMap<Vocabulary, VocabIndex>();

function indexOf(vocab: Vocabulary): VocabIndex {
  const cached = indexCache.get(vocab);
  if (cached) return cached;
  const byText = new Map<string, number>();
  // Later duplicates win, as with llama.cpp's `token_to_id[word] = i`.
  vocab.tokens.forEach((text, id) => {
    byText.set(text, id);
  });
  const byteIds: number[] = [];
  for (let b = 0; b < BYTE_TOKEN_COUNT; b++) {
    const id = byText.get(byteTokenText(b)) ?? byText.get(String.fromCharCode(b));
    if (id === undefined) throw new Error(`vocabulary has no byte token for 0x${b.toString(16)}`);
    byteIds.push(id);
  }
  const index = { byText, byteIds, specialOrder: specialTokenOrder(vocab) };
  indexCache.set(vocab, index);
  return index;
}

interface Bigram {
  left: number;
  right: number;
  score: number;
  size: number;
}

/** True when `a` should be popped before `b`: higher score, then the leftmost pair (llm_bigram_spm::comparator). */
function bigramBefore(a: Bigram, b: Bigram): boolean {
  return a.score > b.score || (a.score === b.score && a.left < b.left);
}

/** Mirrors `llm_tokenizer_spm_session::tokenize` on text whose spaces are already ▁. */
function spmTokenize(vocab: Vocabulary, index: VocabIndex, text: string, out: number[]): void {
  const texts = Array.from(text); // one symbol per code point, like llama.cpp's UTF-8 split
  const n = texts.length;
  if (n === 0) return;
  const prev = new Int32Array(n);
  const next = new Int32Array(n);
  const len = new Int32Array(n); // UTF-16 units; only compared for staleness, so any unit works
  for (let i = 0; i < n; i++) {
    prev[i] = i - 1;
    next[i] = i + 1 === n ? -1 : i + 1;
    len[i] = (texts[i] as string).length;
  }
  const queue = new PriorityQueue<Bigram>(bigramBefore);
  const tryAdd = (left: number, right: number): void => {
    if (left === -1 || right === -1) return;
    const joined = (texts[left] as string) + (texts[right] as string);
    const id = index.byText.get(joined);
    if (id === undefined) return;
    queue.push({ left, right, score: Math.fround(vocab.scores[id] ?? 0), size: joined.length });
  };
  for (let i = 1; i < n; i++) tryAdd(i - 1, i);

  for (let bigram = queue.pop(); bigram !== undefined; bigram = queue.pop()) {
    const { left, right } = bigram;
    const ln = len[left] as number;
    const rn = len[right] as number;
    if (ln === 0 || rn === 0 || ln + rn !== bigram.size) continue;
    len[left] = ln + rn;
    len[right] = 0;
    texts[left] = (texts[left] as string) + (texts[right] as string);
    texts[right] = "";
    const after = next[right] as number;
    next[left] = after;
    if (after >= 0) prev[after] = left;
    tryAdd(prev[left] as number, left);
    tryAdd(left, after);
  }

  const encoder = new TextEncoder();
  for (let i = 0; i !== -1; i = next[i] as number) {
    const piece = texts[i] as string;
    const id = index.byText.get(piece);
    if (id !== undefined) {
      out.push(id);
      continue;
    }
    // Merged symbols are always vocabulary pieces, so only single unknown characters
    // reach here; llama.cpp's rev_merge lookup can never hit for them, leaving bytes.
    for (const byte of encoder.encode(piece)) out.push(index.byteIds[byte] as number);
  }
}

/** Token ids for `text`, exactly as llama.cpp's SPM tokenizer would produce them. */
export function encode(vocab: Vocabulary, text: string, opts: EncodeOptions): number[] {
  const index = indexOf(vocab);
  const out: number[] = [];
  if (opts.addBos) out.push(vocab.bosId);
  if (text === "") return out;
  let prevSpecial = true;
  for (const fragment of partition(vocab, index.specialOrder, wellFormed(text), opts.parseSpecial)) {
    if (fragment.text === null) {
      out.push(fragment.token);
      prevSpecial = true;
      continue;
    }
    const raw = vocab.addSpacePrefix && prevSpecial ? ` ${fragment.text}` : fragment.text;
    spmTokenize(vocab, index, escapeSpaces(raw), out);
    prevSpecial = false;
  }
  return out;
}

/** Text of `ids`; byte tokens are reassembled into UTF-8 before decoding. */
export function decode(vocab: Vocabulary, ids: readonly number[], opts: DecodeOptions = {}): string {
  const bytes: number[] = [];
  const encoder = new TextEncoder();
  for (const id of ids) {
    const text = vocab.tokens[id];
    const type = vocab.types[id];
    if (text === undefined) throw new Error(`token id ${id} is outside the vocabulary`);
    if (type === TokenType.BYTE) {
      bytes.push(Number.parseInt(text.slice(3, 5), 16));
    } else if (type === TokenType.NORMAL || type === TokenType.USER_DEFINED) {
      for (const b of encoder.encode(text.replaceAll(SPACE_MARK, " "))) bytes.push(b);
    } else if ((type === TokenType.CONTROL || type === TokenType.UNKNOWN) && !opts.skipSpecial) {
      for (const b of encoder.encode(text)) bytes.push(b);
    }
  }
  let result = new TextDecoder().decode(new Uint8Array(bytes));
  // llama.cpp drops the space it added itself; mirror that so round trips stay exact.
  if (vocab.addSpacePrefix && result.startsWith(" ")) result = result.slice(1);
  return result;
}

// ---------------------------------------------------------------------------
// Training

/**
 * Pre-tokenisation used only while training: a chunk is an optional ▁ followed by a run
 * of letters, of digits, or of other visible characters; ▁ alone; or one other
 * whitespace character. llama.cpp does no pre-tokenisation for SPM, but it can only form
 * pieces that exist, and no piece crosses a chunk boundary, so the boundaries hold at
 * inference too. Splitting letters from digits and punctuation keeps "Paris" the same
 * token in "Paris." and `"Paris"}`, which a tiny model needs to generalise.
 */
const CHUNK_RE = /▁?[\p{L}\p{M}]+|▁?\p{N}+|▁?[^\s▁\p{L}\p{M}\p{N}]+|▁|\s/gu;

interface HeapEntry {
  count: number;
  key: number;
}

/** Binary heap popping first whatever `before` ranks first; serves both the SPM
 * tokenizer's bigram queue and the trainer's pair counts (stale entries are skipped on
 * pop by the caller: lazy deletion). */
class PriorityQueue<T> {
  private heap: T[] = [];
  constructor(private readonly before: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.heap.length;
  }

  push(item: T): void {
    const heap = this.heap;
    heap.push(item);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent] as T;
      if (!this.before(item, p)) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = item;
  }

  pop(): T | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (top === undefined || last === undefined || heap.length === 0) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= heap.length) break;
      const r = l + 1;
      let best = l;
      if (r < heap.length && this.before(heap[r] as T, heap[l] as T)) best = r;
      if (!this.before(heap[best] as T, last)) break;
      heap[i] = heap[best] as T;
      i = best;
    }
    heap[i] = last;
    return top;
  }
}

/**
 * Trains a BPE vocabulary on `texts` (control-token texts in them are cut out first,
 * as llama-finetune with parse_special sees them as single tokens).
 *
 * Layout: 0 `<unk>`, 1 `<s>`, 2 `</s>`, the control tokens, 256 byte tokens, then
 * characters (most frequent first) and merged pieces in merge order, then UNUSED padding.
 * A merged piece's score is minus its merge rank, so llama.cpp's SPM loop (best score
 * first) replays the merges in training order.
 */
export function trainBpe(texts: string[], opts: TrainBpeOptions): Vocabulary {
  const minPairCount = opts.minPairCount ?? 2;
  const tokens: string[] = ["<unk>", "<s>", "</s>"];
  const types: number[] = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL];
  for (const control of opts.controlTokens) {
    if (tokens.includes(control)) throw new Error(`duplicate control token ${control}`);
    tokens.push(control);
    types.push(TokenType.CONTROL);
  }
  for (let b = 0; b < BYTE_TOKEN_COUNT; b++) {
    tokens.push(byteTokenText(b));
    types.push(TokenType.BYTE);
  }
  const reserved = tokens.length;
  if (opts.vocabSize < reserved) throw new Error(`vocabSize must be at least ${reserved}`);
  const taken = new Set(tokens);
  const specials = tokens.slice(0, 3 + opts.controlTokens.length);

  // Word frequencies over chunks, special-token texts removed.
  const wordCounts = new Map<string, number>();
  for (const text of texts) {
    let segments = [wellFormed(text)];
    for (const special of specials) segments = segments.flatMap((s) => s.split(special));
    for (const segment of segments) {
      for (const match of escapeSpaces(segment).matchAll(CHUNK_RE)) {
        wordCounts.set(match[0], (wordCounts.get(match[0]) ?? 0) + 1);
      }
    }
  }
  // Sorting the words makes training independent of the order texts were given in.
  const words = [...wordCounts.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const freqs = words.map((w) => wordCounts.get(w) as number);

  // Characters: most frequent first. At most half the free slots, so a text full of
  // rare characters still leaves room for merges; the rest fall back to bytes.
  // ASCII control characters (newline, tab) are left to their byte tokens: one token
  // either way, and "\n" then tokenizes to <0x0A>, which llama.cpp takes as the
  // vocabulary's newline token (llama_vocab_nl) for SPM.
  const charCounts = new Map<string, number>();
  words.forEach((w, i) => {
    for (const ch of w) charCounts.set(ch, (charCounts.get(ch) ?? 0) + (freqs[i] as number));
  });
  const chars = [...charCounts.entries()]
    .filter(([ch]) => !taken.has(ch) && (ch.codePointAt(0) as number) >= 0x20 && ch !== "\x7f")
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .slice(0, Math.floor((opts.vocabSize - reserved) / 2))
    .map(([ch]) => ch);

  // Symbols are vocabulary ids; -1 marks a character left to byte fallback, which never merges.
  const idOf = new Map<string, number>();
  tokens.forEach((t, id) => {
    idOf.set(t, id);
  });
  const firstNormal = tokens.length;
  for (const ch of chars) {
    idOf.set(ch, tokens.length);
    tokens.push(ch);
    types.push(TokenType.NORMAL);
  }
  const firstMerged = tokens.length;

  const symbols: number[][] = words.map((w) => Array.from(w, (ch) => idOf.get(ch) ?? -1));
  const stride = opts.vocabSize;
  const pairKey = (a: number, b: number): number => a * stride + b;
  const pairCounts = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();
  const addPairs = (w: number, sign: 1 | -1, changed: Set<number>): void => {
    const syms = symbols[w] as number[];
    const f = (freqs[w] as number) * sign;
    for (let i = 1; i < syms.length; i++) {
      const a = syms[i - 1] as number;
      const b = syms[i] as number;
      if (a < 0 || b < 0) continue;
      const key = pairKey(a, b);
      pairCounts.set(key, (pairCounts.get(key) ?? 0) + f);
      changed.add(key);
      if (sign > 0) {
        const set = pairWords.get(key);
        if (set) set.add(w);
        else pairWords.set(key, new Set([w]));
      }
    }
  };

  // Ties on count go to the pair whose ids are smallest: ids follow character frequency
  // and merge order, so this is stable and independent of Map iteration order.
  const heap = new PriorityQueue<HeapEntry>((x, y) => x.count > y.count || (x.count === y.count && x.key < y.key));
  const initial = new Set<number>();
  for (let w = 0; w < words.length; w++) addPairs(w, 1, initial);
  for (const key of initial) heap.push({ count: pairCounts.get(key) as number, key });

  const forbidden = new Set<number>();
  while (tokens.length < opts.vocabSize) {
    const entry = heap.pop();
    if (entry === undefined || entry.count < minPairCount) break;
    if (pairCounts.get(entry.key) !== entry.count || forbidden.has(entry.key)) continue;
    const a = Math.floor(entry.key / stride);
    const b = entry.key % stride;
    const merged = (tokens[a] as string) + (tokens[b] as string);
    let id = idOf.get(merged);
    if (id === undefined) {
      if (taken.has(merged)) {
        // Would alias a control or byte token's text; never create it.
        forbidden.add(entry.key);
        continue;
      }
      id = tokens.length;
      idOf.set(merged, id);
      tokens.push(merged);
      types.push(TokenType.NORMAL);
    }
    const changed = new Set<number>();
    for (const w of pairWords.get(entry.key) ?? []) {
      const syms = symbols[w] as number[];
      let found = false;
      for (let i = 1; i < syms.length; i++) {
        if (syms[i - 1] === a && syms[i] === b) {
          found = true;
          break;
        }
      }
      if (!found) continue;
      addPairs(w, -1, changed);
      const out: number[] = [];
      for (let i = 0; i < syms.length; i++) {
        if (i + 1 < syms.length && syms[i] === a && syms[i + 1] === b) {
          out.push(id);
          i++;
        } else {
          out.push(syms[i] as number);
        }
      }
      symbols[w] = out;
      addPairs(w, 1, changed);
    }
    pairWords.delete(entry.key);
    for (const key of changed) {
      const count = pairCounts.get(key) as number;
      if (count <= 0) pairCounts.delete(key);
      else heap.push({ count, key });
    }
  }

  // Scores: merged pieces by rank, then characters below them (their score is never
  // consulted by the SPM loop, which only scores pieces of two or more characters).
  const merges = tokens.length - firstMerged;
  const scores: number[] = tokens.map((_, id) => {
    if (id >= firstMerged) return -(id - firstMerged);
    if (id >= firstNormal) return -(merges + (id - firstNormal));
    return 0;
  });
  while (tokens.length < opts.vocabSize) {
    tokens.push(`<unused${tokens.length - firstMerged - merges}>`);
    types.push(TokenType.UNUSED);
    scores.push(0);
  }

  const eosControl = opts.controlTokens.includes("<|end|>")
    ? "<|end|>"
    : opts.controlTokens[opts.controlTokens.length - 1];
  return {
    tokens,
    scores,
    types,
    unkId: 0,
    bosId: 1,
    eosId: eosControl === undefined ? 2 : (idOf.get(eosControl) as number),
    // false: with true, llama.cpp puts a space before every text fragment that starts
    // the input or follows a special token, so "<|user|>\nHi" would be tokenized with
    // a leading "▁" that never appears between "<|user|>" and "\n" in the training
    // text as we chunk it, and node-llama-cpp, which tokenizes template text and
    // special tokens in separate calls, would insert it at every call boundary.
    // It must be written as tokenizer.ggml.add_space_prefix=false: llama.cpp defaults
    // it to true for a "llama" tokenizer.
    addSpacePrefix: false,
  };
}
