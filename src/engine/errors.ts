// Failures of the local engine, named for what the caller should do about them.
// The HTTP layer maps each to OpenAI's error envelope in one place.

export class QueueFullError extends Error {
  constructor(
    readonly model: string,
    readonly retryAfterSeconds: number,
  ) {
    super(
      `model ${model} is at capacity: all sequences are busy and the wait queue is full; retry in ${retryAfterSeconds}s`,
    );
  }
}

export class QueueTimeoutError extends Error {
  constructor(
    readonly model: string,
    readonly waitedMs: number,
  ) {
    super(`model ${model} had no free sequence within ${waitedMs} ms; the server is overloaded, retry later`);
  }
}

export class ModelLoadError extends Error {
  constructor(
    readonly model: string,
    reason: string,
  ) {
    super(`model ${model} could not be loaded: ${reason}`);
  }
}

/** A request aborted because its client went away; never reported as a failure. */
export class AbortedError extends Error {
  constructor() {
    super("request aborted by the client");
  }
}
