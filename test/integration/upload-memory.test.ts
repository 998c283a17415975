// Uploads stream to disk (issue #21 item 2): six concurrent 40 MB fine-tune uploads to the
// server in its own process raise its resident memory by less than 256 MiB at the peak, and it
// is back within 64 MiB of where it started once they are over. Before uploads were streamed
// the same run peaked 1.3 GiB above the start and stayed ~250 MiB above it.
import { describe, expect, it } from "vitest";
import { measureUploads } from "../helpers/upload-memory.ts";

describe("upload memory", () => {
  it("six concurrent 40 MB uploads: peak growth < 256 MiB, back within 64 MiB afterwards", async () => {
    const m = await measureUploads({ uploads: 6, megabytes: 40 });
    expect(m.statuses).toEqual([200, 200, 200, 200, 200, 200]);
    expect(m.peakGrowthMiB, JSON.stringify(m)).toBeLessThan(256);
    expect(m.afterGrowthMiB, JSON.stringify(m)).toBeLessThan(64);
  }, 180_000);
});
