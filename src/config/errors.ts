// Configuration problems, each pointing at a file, a line and a field, e.g.
//   models.yaml:7: models[0].parallel: expected a number, got "four"
// The process refuses to start on any of them; the message alone should be enough to fix it.

export interface ConfigProblem {
  /** 1-based line in the file; undefined when the problem is not in the file (environment). */
  line: number | undefined;
  /** Dotted path of the field (`models[0].parallel`), or the environment variable's name. */
  field: string | undefined;
  message: string;
}

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  readonly file: string;
  /** Every problem found, the first being the one named in `line` and `field`. */
  readonly problems: readonly ConfigProblem[];

  constructor(file: string, problems: ConfigProblem[]) {
    super(problems.map((p) => formatProblem(file, p)).join("\n"));
    this.file = file;
    this.problems = problems;
  }

  get line(): number | undefined {
    return this.problems[0]?.line;
  }

  get field(): string | undefined {
    return this.problems[0]?.field;
  }
}

function formatProblem(file: string, problem: ConfigProblem): string {
  const where = problem.line === undefined ? file : `${file}:${problem.line}`;
  return problem.field === undefined || problem.field === ""
    ? `${where}: ${problem.message}`
    : `${where}: ${problem.field}: ${problem.message}`;
}
