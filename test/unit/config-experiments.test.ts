import { describe, expect, it } from "vitest";
import { ConfigError } from "../../src/config/errors.ts";
import { parseConfig } from "../../src/config/load.ts";

const MODELS = `models:
  - id: tiny
    provider: llama
    path: models/tiny.gguf
    aliases: [t]
  - id: tiny-ft
    provider: llama
    path: models/tiny-ft.gguf
`;

const ISSUE_EXAMPLE = `${MODELS}
experiments:
  - name: chat
    sticky_header: X-User-Id
    variants:
      - name: control
        model: tiny
        weight: 90
      - name: canary
        model: [tiny-ft, t]
        weight: 10
        canary: true
        rollback:
          - {metric: error_rate, max: 0.2, min_requests: 20, window: 5m}
          - {metric: latency_p95_ms, max_vs_control: 2.0, min_requests: 50, window: 5m}
`;

function problems(text: string): string[] {
  try {
    parseConfig(text, "models.yaml", {});
  } catch (err) {
    if (err instanceof ConfigError) return err.message.split("\n");
    throw err;
  }
  throw new Error("expected a ConfigError");
}

const experiment = (variants: string, name = "chat") => `${MODELS}
experiments:
  - name: ${name}
    variants:
${variants}`;

describe("experiments in models.yaml", () => {
  it("resolves the issue's example: aliases to ids, durations to ms, the first non-canary as control", () => {
    const config = parseConfig(ISSUE_EXAMPLE, "/srv/models.yaml", {});
    expect(config.experiments).toEqual([
      {
        name: "chat",
        stickyHeader: "x-user-id",
        control: "control",
        forceKeys: [],
        variants: [
          { name: "control", models: ["tiny"], weight: 90, canary: false, fallback: true, rollback: [] },
          {
            name: "canary",
            models: ["tiny-ft", "tiny"],
            weight: 10,
            canary: true,
            fallback: true,
            rollback: [
              { metric: "error_rate", max: 0.2, maxVsControl: undefined, minRequests: 20, windowMs: 300_000 },
              { metric: "latency_p95_ms", max: undefined, maxVsControl: 2, minRequests: 50, windowMs: 300_000 },
            ],
          },
        ],
      },
    ]);
    expect(config.experiment_state).toEqual({ store: "file", url: "redis://127.0.0.1:6379", pollMs: 500 });
  });

  it("takes an explicit control, and shares the cache's Redis by default", () => {
    const text = `${experiment(`      - {name: a, model: tiny, weight: 1}
      - {name: b, model: tiny-ft, weight: 1, control: true}
`)}cache: {store: redis, url: "redis://cache:6379"}
`;
    const config = parseConfig(text, "/srv/models.yaml", {});
    expect(config.experiments[0]?.control).toBe("b");
    expect(config.experiment_state).toEqual({ store: "redis", url: "redis://cache:6379", pollMs: 500 });
  });

  it("refuses a name that is a model id or alias, and unknown models", () => {
    expect(problems(experiment("      - {name: a, model: tiny, weight: 1}\n", "t"))).toEqual([
      'models.yaml:11: experiments[0].name: "t" is already the id or alias of models[0]; pick another name',
    ]);
    expect(problems(experiment("      - {name: a, model: [tiny, nope], weight: 1}\n"))).toEqual([
      'models.yaml:13: experiments[0].variants[0].model[1]: "nope" is not the id or alias of any model',
    ]);
  });

  it("needs exactly one control, rules only on canaries, one bound per rule", () => {
    expect(problems(experiment("      - {name: a, model: tiny, weight: 1, canary: true}\n"))).toEqual([
      "models.yaml:12: experiments[0].variants: needs a control: a variant that is not a canary, or one with control: true",
    ]);
    expect(
      problems(
        experiment(`      - {name: a, model: tiny, weight: 1, control: true}
      - {name: b, model: tiny, weight: 1, control: true}
`),
      ),
    ).toEqual(["models.yaml:12: experiments[0].variants: at most one variant may have control: true"]);
    expect(
      problems(
        experiment(`      - {name: a, model: tiny, weight: 1, rollback: [{metric: error_rate, max: 0.1}]}
      - {name: b, model: tiny, weight: 1, canary: true, rollback: [{metric: error_rate, max: 0.1, max_vs_control: 2}]}
`),
      ),
    ).toEqual([
      "models.yaml:13: experiments[0].variants[0].rollback: rollback rules need canary: true (the control is what they compare with)",
      "models.yaml:14: experiments[0].variants[1].rollback[0]: set exactly one of max and max_vs_control",
    ]);
  });

  it("refuses duplicate names and all-zero weights", () => {
    const text = `${experiment(`      - {name: a, model: tiny, weight: 0}
      - {name: a, model: tiny, weight: 0}
`)}  - name: chat
    variants: [{name: a, model: tiny, weight: 1}]
`;
    expect(problems(text)).toEqual([
      'models.yaml:14: experiments[0].variants[1].name: variant "a" is defined twice',
      "models.yaml:12: experiments[0].variants: at least one variant needs a weight above 0",
      'models.yaml:15: experiments[1].name: experiment "chat" is defined twice',
    ]);
  });
});
