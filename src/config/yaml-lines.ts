// Finds the line of a value in a parsed YAML document from its path (as zod reports it), so a
// schema error can point at models.yaml:7 rather than at "somewhere in the file".
import { type Document, isMap, isScalar, isSeq, type LineCounter, type Node } from "yaml";

/**
 * The 1-based line of the value at `path`, or of its nearest existing ancestor when the value is
 * missing (a required field reports the line where its object starts). A mapping key reports the
 * key's line, which is where a reader looks even when the value is a block on the lines below.
 */
export function lineOfPath(doc: Document, lines: LineCounter, path: readonly PropertyKey[]): number {
  let node: unknown = doc.contents;
  let offset = startOf(node) ?? 0;
  for (const segment of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(segment));
      if (pair === undefined) break;
      offset = startOf(pair.key) ?? startOf(pair.value) ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === "number") {
      const item = node.items[segment];
      if (item === undefined) break;
      offset = startOf(item) ?? offset;
      node = item;
    } else {
      break;
    }
  }
  return lines.linePos(offset).line;
}

function startOf(node: unknown): number | undefined {
  if (node === null || typeof node !== "object" || !("range" in node)) return undefined;
  const range = (node as Node).range;
  return range?.[0];
}
