import { describe, expect, it } from "vitest";
import { StopMatcher } from "../../src/engine/stop.ts";

function run(stops: string[], pieces: string[]) {
  const s = new StopMatcher(stops);
  let out = "";
  for (const p of pieces) {
    const r = s.push(p);
    out += r.emit;
    if (r.stopped) return { out, stopped: true };
  }
  return { out: out + s.flush(), stopped: false };
}

describe("StopMatcher", () => {
  it("passes text through without stops", () => {
    expect(run([], ["Hel", "lo"])).toEqual({ out: "Hello", stopped: false });
  });

  it("cuts at a stop sequence inside one piece", () => {
    expect(run(["END"], ["abcENDdef"])).toEqual({ out: "abc", stopped: true });
  });

  it("cuts at a stop sequence split across pieces and never emits its start", () => {
    const s = new StopMatcher(["\nUser:"]);
    expect(s.push("Hi\nUs")).toEqual({ emit: "Hi", stopped: false });
    expect(s.push("er: x")).toEqual({ emit: "", stopped: true });
  });

  it("releases held text when the prefix turns out not to be a stop", () => {
    expect(run(["ab"], ["xa", "c"])).toEqual({ out: "xac", stopped: false });
  });

  it("uses the earliest of several stops", () => {
    expect(run(["b", "c"], ["aacb"])).toEqual({ out: "aa", stopped: true });
  });

  it("flushes a pending prefix at the end", () => {
    expect(run(["abc"], ["xab"])).toEqual({ out: "xab", stopped: false });
  });
});
