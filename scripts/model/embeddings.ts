// Token vectors from the training text's own co-occurrence statistics (positive PMI
// of neighbouring tokens, reduced by SVD). llama-finetune never updates the token
// embeddings, so whatever they hold at the start is all the model ever gets: with
// purely random vectors, "dog" and "cat" share nothing that attention queries could
// learn to look for; with these, words used alike (animals, names, numbers) point
// alike, so one query finds any of them.
import { Rng } from "./architecture.ts";

/** Neighbour offsets whose counts make a token's context signature. */
const OFFSETS = [-2, -1, 1, 2];

/**
 * `dims` values per token (row-major, nVocab × dims), each row scaled to unit
 * RMS; tokens never seen get zeros. Deterministic for `seed`.
 */
export function semanticVectors(ids: readonly number[], nVocab: number, dims: number, seed: number): Float32Array {
  // Sparse counts: row = token, column = (offset slot, neighbour).
  const cols = OFFSETS.length * nVocab;
  const counts = new Map<number, number>();
  const rowTotal = new Float64Array(nVocab);
  const colTotal = new Float64Array(cols);
  let total = 0;
  for (let i = 0; i < ids.length; i++) {
    const t = ids[i] as number;
    OFFSETS.forEach((off, slot) => {
      const j = i + off;
      if (j < 0 || j >= ids.length) return;
      const c = slot * nVocab + (ids[j] as number);
      const key = t * cols + c;
      counts.set(key, (counts.get(key) ?? 0) + 1);
      rowTotal[t] = (rowTotal[t] ?? 0) + 1;
      colTotal[c] = (colTotal[c] ?? 0) + 1;
      total++;
    });
  }
  // PPMI rows, kept sparse, then the Gram matrix G = M·Mᵀ (nVocab²): its top
  // eigenvectors are M's left singular vectors.
  const rows: { col: number; v: number }[][] = Array.from({ length: nVocab }, () => []);
  for (const [key, n] of counts) {
    const t = Math.floor(key / cols);
    const c = key % cols;
    const pmi = Math.log((n * total) / ((rowTotal[t] ?? 1) * (colTotal[c] ?? 1)));
    if (pmi > 0) rows[t]?.push({ col: c, v: pmi });
  }
  const byCol = new Map<number, { row: number; v: number }[]>();
  rows.forEach((r, t) => {
    for (const { col, v } of r) {
      const list = byCol.get(col) ?? [];
      if (list.length === 0) byCol.set(col, list);
      list.push({ row: t, v });
    }
  });
  const gram = new Float64Array(nVocab * nVocab);
  for (const list of byCol.values()) {
    for (const a of list)
      for (const b of list) gram[a.row * nVocab + b.row] = (gram[a.row * nVocab + b.row] ?? 0) + a.v * b.v;
  }
  const basis = topEigenvectors(gram, nVocab, dims, new Rng(seed));

  const out = new Float32Array(nVocab * dims);
  for (let t = 0; t < nVocab; t++) {
    let sq = 0;
    for (let k = 0; k < dims; k++) sq += (basis[k]?.[t] ?? 0) ** 2;
    const scale = sq > 0 ? Math.sqrt(dims / sq) : 0;
    for (let k = 0; k < dims; k++) out[t * dims + k] = (basis[k]?.[t] ?? 0) * scale;
  }
  return out;
}

/** Orthogonal (subspace) iteration for the `k` leading eigenvectors of a symmetric n×n matrix. */
function topEigenvectors(a: Float64Array, n: number, k: number, rng: Rng): Float64Array[] {
  let q = Array.from({ length: k }, () => Float64Array.from({ length: n }, () => rng.normal()));
  orthonormalise(q);
  for (let iter = 0; iter < 40; iter++) {
    q = q.map((v) => {
      const out = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        let s = 0;
        const row = i * n;
        for (let j = 0; j < n; j++) s += (a[row + j] ?? 0) * (v[j] ?? 0);
        out[i] = s;
      }
      return out;
    });
    orthonormalise(q);
  }
  return q;
}

function orthonormalise(vs: Float64Array[]): void {
  vs.forEach((v, i) => {
    for (let j = 0; j < i; j++) {
      const u = vs[j] as Float64Array;
      let dot = 0;
      for (let x = 0; x < v.length; x++) dot += (v[x] ?? 0) * (u[x] ?? 0);
      for (let x = 0; x < v.length; x++) v[x] = (v[x] ?? 0) - dot * (u[x] ?? 0);
    }
    let norm = 0;
    for (const x of v) norm += x * x;
    norm = Math.sqrt(norm) || 1;
    for (let x = 0; x < v.length; x++) v[x] = (v[x] ?? 0) / norm;
  });
}
