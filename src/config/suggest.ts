// "Did you mean" for unknown fields in models.yaml: a typo such as `paralel` should name the
// field the author meant, not only say that the one they wrote is wrong.
import type { z } from "zod";

/** The keys a strict object at `path` inside `schema` accepts (all options of a union). */
export function knownKeys(schema: z.core.$ZodType, path: readonly PropertyKey[]): string[] {
  let current: z.core.$ZodType[] = [schema];
  for (const segment of path) {
    current = current.flatMap((s) => child(unwrap(s), segment));
  }
  const keys = new Set<string>();
  for (const s of current.flatMap(unwrap)) {
    const def = s._zod.def;
    if (def.type === "object") for (const k of Object.keys((def as z.core.$ZodObjectDef).shape)) keys.add(k);
  }
  return [...keys];
}

/** A sentence to append to "unknown field", or "" when nothing sensible comes to mind. */
export function suggestKey(unknown: string, known: readonly string[]): string {
  if (known.length === 0) return "";
  const scored = known
    .map((k) => ({ k, d: distance(unknown.toLowerCase(), k.toLowerCase()) }))
    .sort((a, b) => a.d - b.d);
  const best = scored[0];
  if (best !== undefined && best.d <= Math.max(1, Math.floor(best.k.length / 4))) return `; did you mean "${best.k}"?`;
  const prefix = known.find((k) => k.startsWith(unknown) || unknown.startsWith(k));
  if (prefix !== undefined) return `; did you mean "${prefix}"?`;
  return `; expected one of ${known.join(", ")}`;
}

function unwrap(schema: z.core.$ZodType): z.core.$ZodType[] {
  const def = schema._zod.def as z.core.$ZodTypeDef & {
    innerType?: z.core.$ZodType;
    in?: z.core.$ZodType;
    options?: z.core.$ZodType[];
  };
  switch (def.type) {
    case "optional":
    case "nullable":
    case "default":
    case "prefault":
    case "readonly":
      return def.innerType === undefined ? [] : unwrap(def.innerType);
    case "pipe":
      return def.in === undefined ? [] : unwrap(def.in);
    case "union":
      return (def.options ?? []).flatMap(unwrap);
    default:
      return [schema];
  }
}

function child(schema: z.core.$ZodType[], segment: PropertyKey): z.core.$ZodType[] {
  return schema.flatMap((s) => {
    const def = s._zod.def;
    if (def.type === "object") {
      const next = (def as z.core.$ZodObjectDef).shape[String(segment)];
      return next === undefined ? [] : [next];
    }
    if (def.type === "array" && typeof segment === "number") return [(def as z.core.$ZodArrayDef).element];
    return [];
  });
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0] as number;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j] as number;
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      row[j] = Math.min(above + 1, (row[j - 1] as number) + 1, diagonal + cost);
      diagonal = above;
    }
  }
  return row[b.length] as number;
}
