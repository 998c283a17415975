// Fresh text for benchmarks: prompts neither server has seen, the same for both servers in a
// run. 32-bit integer arithmetic throughout (Math.imul): an LCG in doubles loses its low bits past
// 2^53, and multiturn.ts once gave every user the same messages that way.

const WORDS =
  "harbour lantern orchard meadow copper river station garden signal ferry market window valley thunder pepper castle violin saddle carpet ribbon".split(
    " ",
  );

/** Numbers in [0, 1) from `seed` (an LCG); the same seed gives the same sequence. */
export function seededRandom(seed: number): () => number {
  let x = Math.imul(seed, 2654435761) >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
}

/** `n` words of plain text ending with a full stop, different for every seed. */
export function freshText(n: number, seed: number): string;
/** `n` words drawn from `next`. */
export function freshText(n: number, next: () => number): string;
export function freshText(n: number, seed: number | (() => number)): string {
  const next = typeof seed === "number" ? seededRandom(seed) : seed;
  return `${Array.from({ length: n }, () => WORDS[Math.floor(next() * WORDS.length)]).join(" ")}.`;
}
