/**
 * Seeded generator of the chat dialogues the built-in tiny model is trained on.
 *
 * A model of a few million parameters trained for minutes cannot learn English; it can
 * memorise a few hundred question→answer pairs. So every assistant reply is a fixed
 * function of the user turn (one canonical reply per fact, only the question's wording
 * varies), each fact is repeated several times, and the whole corpus stays around
 * 100k tokens so llama-finetune gets through several epochs quickly.
 */
import { type ChatMessage, renderChat } from "./chat-template.ts";

export interface Dialogue {
  messages: ChatMessage[];
}

export interface EvalItem {
  /** A prompt that occurs verbatim in the training dialogues (the reply left out). */
  messages: ChatMessage[];
  /** Short text the reply must contain, e.g. "Paris", "7", "c-a-t". */
  expected: string;
  category: Category;
}

export interface Corpus {
  train: Dialogue[];
  evalSet: EvalItem[];
}

export type Category =
  | "capital"
  | "colour"
  | "animal"
  | "opposite"
  | "arithmetic"
  | "spelling"
  | "greeting"
  | "counting"
  | "story"
  | "json"
  | "system"
  | "two-turn";

export interface CorpusOptions {
  /** How many times each fact is asked (with varied wording). */
  repeats?: number;
}

// ---------------------------------------------------------------------------
// Deterministic randomness: the corpus must be byte-identical for a seed on every
// machine and Node version, which Math.random cannot promise.

/** mulberry32: tiny, fast, and good enough for shuffling and picking. */
export function createRng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(rng: () => number, items: readonly T[]): T {
  const item = items[Math.floor(rng() * items.length)];
  if (item === undefined) throw new Error("pick from an empty list");
  return item;
}

function shuffle<T>(rng: () => number, items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const tmp = items[i] as T;
    items[i] = items[j] as T;
    items[j] = tmp;
  }
  return items;
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

// ---------------------------------------------------------------------------
// Facts

const CAPITALS: readonly (readonly [string, string])[] = [
  ["France", "Paris"],
  ["Spain", "Madrid"],
  ["Italy", "Rome"],
  ["Germany", "Berlin"],
  ["Portugal", "Lisbon"],
  ["England", "London"],
  ["Ireland", "Dublin"],
  ["Japan", "Tokyo"],
  ["China", "Beijing"],
  ["Egypt", "Cairo"],
  ["Russia", "Moscow"],
  ["Greece", "Athens"],
  ["Austria", "Vienna"],
  ["Norway", "Oslo"],
  ["Sweden", "Stockholm"],
  ["Finland", "Helsinki"],
  ["Denmark", "Copenhagen"],
  ["Poland", "Warsaw"],
  ["Canada", "Ottawa"],
  ["Mexico", "Mexico City"],
  ["Peru", "Lima"],
  ["Chile", "Santiago"],
  ["Argentina", "Buenos Aires"],
  ["Kenya", "Nairobi"],
  ["India", "New Delhi"],
  ["Thailand", "Bangkok"],
  ["Australia", "Canberra"],
  ["Turkey", "Ankara"],
  ["Belgium", "Brussels"],
  ["Hungary", "Budapest"],
];

/** Subject (with article, lower case) and its colour. */
const COLOURS: readonly (readonly [string, string])[] = [
  ["the sky", "blue"],
  ["grass", "green"],
  ["snow", "white"],
  ["a banana", "yellow"],
  ["coal", "black"],
  ["a strawberry", "red"],
  ["an orange", "orange"],
  ["a lemon", "yellow"],
  ["a tomato", "red"],
  ["a leaf", "green"],
  ["the sun", "yellow"],
  ["milk", "white"],
  ["a carrot", "orange"],
  ["the sea", "blue"],
  ["chocolate", "brown"],
  ["a crow", "black"],
  ["a frog", "green"],
  ["a cherry", "red"],
  ["an eggplant", "purple"],
  ["a pumpkin", "orange"],
  ["a cloud", "white"],
  ["a fire truck", "red"],
  ["a flamingo", "pink"],
  ["an elephant", "grey"],
  ["a lime", "green"],
];

/** Animal (with article) and the sound it makes. */
const ANIMALS: readonly (readonly [string, string])[] = [
  ["a dog", "woof"],
  ["a cat", "meow"],
  ["a cow", "moo"],
  ["a duck", "quack"],
  ["a sheep", "baa"],
  ["a pig", "oink"],
  ["a horse", "neigh"],
  ["an owl", "hoot"],
  ["a lion", "roar"],
  ["a frog", "ribbit"],
  ["a bee", "buzz"],
  ["a snake", "hiss"],
  ["a mouse", "squeak"],
  ["a rooster", "cock-a-doodle-doo"],
  ["a donkey", "hee-haw"],
  ["a crow", "caw"],
];

const OPPOSITES: readonly (readonly [string, string])[] = [
  ["hot", "cold"],
  ["big", "small"],
  ["up", "down"],
  ["day", "night"],
  ["fast", "slow"],
  ["happy", "sad"],
  ["old", "new"],
  ["open", "closed"],
  ["light", "dark"],
  ["left", "right"],
  ["wet", "dry"],
  ["tall", "short"],
  ["full", "empty"],
  ["hard", "soft"],
  ["early", "late"],
  ["in", "out"],
  ["yes", "no"],
  ["good", "bad"],
  ["rich", "poor"],
  ["loud", "quiet"],
  ["black", "white"],
  ["first", "last"],
  ["strong", "weak"],
  ["clean", "dirty"],
  ["near", "far"],
];

const SPELLING_WORDS: readonly string[] = [
  "cat",
  "dog",
  "sun",
  "hat",
  "red",
  "cup",
  "pen",
  "box",
  "bed",
  "car",
  "fish",
  "bird",
  "book",
  "tree",
  "milk",
  "moon",
  "star",
  "frog",
  "cake",
  "door",
  "blue",
  "ship",
  "rain",
  "home",
  "apple",
  "house",
  "green",
  "water",
  "bread",
  "chair",
  "table",
  "horse",
  "mouse",
  "happy",
  "music",
  "river",
  "light",
  "paper",
  "train",
  "plant",
];

const STORY_ANIMALS: readonly string[] = [
  "dog",
  "cat",
  "rabbit",
  "fox",
  "bear",
  "mouse",
  "duck",
  "horse",
  "lion",
  "owl",
  "frog",
  "pig",
];

const NAMES: readonly string[] = ["Alice", "Bob", "Carol", "David", "Emma", "Frank", "Grace", "Henry", "Maria", "Sam"];

const SYSTEM_PROMPTS: readonly string[] = [
  "You are a helpful assistant.",
  "You are a helpful assistant.",
  "You are a friendly assistant.",
  "You are a concise assistant. Answer briefly.",
];

const JSON_SYSTEM_PROMPTS: readonly string[] = [
  "Reply in JSON.",
  "You are a helpful assistant. Always answer in JSON.",
];

interface Greeting {
  prompts: readonly string[];
  reply: string;
  expected: string;
}

const GREETINGS: readonly Greeting[] = [
  {
    prompts: ["Hello!", "Hello", "Hi!", "Hi there!", "Hey!", "Hello there!", "Good morning!", "hello"],
    reply: "Hello! How can I help you today?",
    expected: "help",
  },
  {
    prompts: ["How are you?", "How are you today?", "How are you doing?"],
    reply: "I am doing well, thank you. How can I help you today?",
    expected: "well",
  },
  {
    prompts: ["Thank you!", "Thanks!", "Thank you very much.", "thanks"],
    reply: "You are welcome!",
    expected: "welcome",
  },
  {
    prompts: ["Goodbye!", "Bye!", "See you later!"],
    reply: "Goodbye! Have a nice day!",
    expected: "Goodbye",
  },
  {
    prompts: ["Who are you?", "What are you?"],
    reply: "I am a small assistant. I can answer simple questions.",
    expected: "assistant",
  },
  {
    prompts: ["What is your name?", "What's your name?"],
    reply: "My name is Tiny. I am a small test model.",
    expected: "Tiny",
  },
  {
    prompts: ["What can you do?", "How can you help me?"],
    reply: "I can answer simple questions about capitals, colours, animals, numbers and spelling.",
    expected: "capitals",
  },
  {
    prompts: ["Tell me a joke.", "Do you know a joke?"],
    reply: "Why did the cat sit on the computer? To keep an eye on the mouse!",
    expected: "mouse",
  },
];

// ---------------------------------------------------------------------------
// Question/answer pairs. `asks` holds the wordings of the question, the first being
// canonical (used for evaluation and guaranteed to be trained on).

export interface Fact {
  category: Category;
  asks: readonly string[];
  reply: string;
  expected: string;
  /** Short form for the JSON variants; absent when a JSON answer makes no sense. */
  jsonQuestion?: string;
  jsonReply?: string;
}

export function buildFacts(): Fact[] {
  const facts: Fact[] = [];
  for (const [country, capital] of CAPITALS) {
    facts.push({
      category: "capital",
      asks: [
        `What is the capital of ${country}?`,
        `What's the capital of ${country}?`,
        `Which city is the capital of ${country}?`,
        `Tell me the capital of ${country}.`,
        `what is the capital of ${country}?`,
      ],
      reply: `The capital of ${country} is ${capital}.`,
      expected: capital,
      jsonQuestion: `what is the capital of ${country} in JSON?`,
      jsonReply: `{"${country}": "${capital}"}`,
    });
  }
  for (const [thing, colour] of COLOURS) {
    facts.push({
      category: "colour",
      asks: [
        `What colour is ${thing}?`,
        `What color is ${thing}?`,
        `Which colour is ${thing}?`,
        `Tell me the colour of ${thing}.`,
      ],
      reply: `${capitalise(thing)} is ${colour}.`,
      expected: colour,
      jsonQuestion: `what colour is ${thing} in JSON?`,
      jsonReply: `{"${thing.replace(/^(the|an?) /, "")}": "${colour}"}`,
    });
  }
  for (const [animal, sound] of ANIMALS) {
    facts.push({
      category: "animal",
      asks: [`What sound does ${animal} make?`, `What does ${animal} say?`, `What noise does ${animal} make?`],
      reply: `${capitalise(animal)} says ${sound}.`,
      expected: sound,
    });
  }
  for (const [word, opposite] of OPPOSITES) {
    facts.push({
      category: "opposite",
      asks: [`What is the opposite of ${word}?`, `What's the opposite of ${word}?`, `Give me the opposite of ${word}.`],
      reply: `The opposite of ${word} is ${opposite}.`,
      expected: opposite,
    });
  }
  const arithmetic = (a: number, op: "plus" | "minus" | "times", b: number, result: number): void => {
    const symbol = op === "plus" ? "+" : op === "minus" ? "-" : "*";
    const asks =
      op === "plus"
        ? [`What is ${a} plus ${b}?`, `What is ${a} + ${b}?`, `How much is ${a} plus ${b}?`, `Add ${a} and ${b}.`]
        : op === "minus"
          ? [`What is ${a} minus ${b}?`, `What is ${a} - ${b}?`, `How much is ${a} minus ${b}?`]
          : [`What is ${a} times ${b}?`, `What is ${a} * ${b}?`, `How much is ${a} times ${b}?`];
    facts.push({
      category: "arithmetic",
      asks,
      reply: `${a} ${op} ${b} is ${result}.`,
      expected: String(result),
      jsonQuestion: `what is ${a} ${symbol} ${b} in JSON?`,
      jsonReply: `{"${a} ${symbol} ${b}": ${result}}`,
    });
  };
  // Each sum is a fact to memorise, not arithmetic the model could learn: a small
  // table keeps the corpus within what trains in the make-model time budget.
  for (let a = 1; a <= 5; a++) for (let b = 1; b <= 5; b++) arithmetic(a, "plus", b, a + b);
  for (let a = 5; a <= 9; a++) for (const b of [1, 3]) arithmetic(a, "minus", b, a - b);
  for (let a = 2; a <= 5; a++) for (let b = 2; b <= 5; b++) arithmetic(a, "times", b, a * b);
  for (const word of SPELLING_WORDS) {
    facts.push({
      category: "spelling",
      asks: [`Spell ${word}.`, `How do you spell ${word}?`, `Can you spell ${word}?`, `Spell the word ${word}.`],
      // The word again first, so each letter is copied from a few tokens back.
      reply: `${capitalise(word)} is spelled ${word.split("").join("-")}.`,
      expected: word.split("").join("-"),
    });
  }
  for (const greeting of GREETINGS) {
    facts.push({ category: "greeting", asks: greeting.prompts, reply: greeting.reply, expected: greeting.expected });
  }
  // Down, not up: where a count stops must be decided from the tokens just before
  // (…, 2, 1.), not from an n said twenty tokens earlier, which this model cannot see.
  for (let n = 3; n <= 20; n++) {
    const numbers = Array.from({ length: n }, (_, i) => String(n - i));
    facts.push({
      category: "counting",
      asks: [`Count down from ${n}.`, `Count down from ${n} to 1.`, `Please count down from ${n}.`],
      reply: `${numbers.join(", ")}.`,
      // The start and, with the full stop, the end: a count that runs past 1 must not pass.
      expected: n > 5 ? `${numbers.slice(0, 2).join(", ")}` : `${numbers.join(", ")}.`,
    });
  }
  // Long, predictable replies: integration tests need something to stream and to
  // cut off with max_tokens.
  for (const animal of STORY_ANIMALS) {
    facts.push({
      category: "story",
      asks: [`Tell me a story about a ${animal}.`, `Write a short story about a ${animal}.`],
      // The animal comes first, a few tokens after the question names it.
      reply:
        `A little ${animal} lived near the park. Every morning the ${animal} went out to play in the park. ` +
        `One day the ${animal} found a red ball under a big tree. The ${animal} played with the ball all day long. ` +
        `In the evening the ${animal} went home, happy and tired. The end.`,
      expected: `little ${animal}`,
    });
  }
  return facts;
}

function turn(role: ChatMessage["role"], content: string): ChatMessage {
  return { role, content };
}

/**
 * Generates the training dialogues (already shuffled) and an evaluation set whose
 * prompts all occur verbatim in training. The same seed always gives the same corpus.
 */
export function generateCorpus(seed: number, opts: CorpusOptions = {}): Corpus {
  const repeats = opts.repeats ?? 7;
  const rng = createRng(seed);
  const facts = buildFacts();
  const train: Dialogue[] = [];

  for (const fact of facts) {
    for (let r = 0; r < repeats; r++) {
      // The first repetitions use the canonical wording so the evaluation prompts are
      // trained on; the rest spread over the alternative wordings.
      // Repetitions 3 and 4 pair the canonical wording with the common system prompt,
      // a few later ones get a random one: a system prompt must not change the answer.
      const ask = r < 4 ? (fact.asks[0] as string) : pick(rng, fact.asks);
      const messages: ChatMessage[] = [];
      if (r === 2 || r === 3) messages.push(turn("system", SYSTEM_PROMPTS[0] as string));
      else if (r > 3 && rng() < 0.1) messages.push(turn("system", pick(rng, SYSTEM_PROMPTS)));
      messages.push(turn("user", ask), turn("assistant", fact.reply));
      train.push({ messages });
    }
  }

  // JSON answers: an instruction in the user turn or in the system prompt.
  const jsonFacts = facts.filter((f) => f.jsonQuestion !== undefined && f.jsonReply !== undefined);
  for (const fact of jsonFacts) {
    if (fact.category === "arithmetic" && rng() < 0.6) continue; // keep JSON from being mostly sums
    const question = fact.jsonQuestion as string;
    const reply = fact.jsonReply as string;
    // "in JSON" ends the question and the reply names its subject first: a model this
    // small attends reliably only to the last few tokens, so both what to answer and
    // how must be near the reply (measured: "Answer in JSON: …" got the format wrong,
    // "… Answer in JSON." the fact).
    const asked = capitalise(question);
    train.push({ messages: [turn("user", asked), turn("assistant", reply)] });
    train.push({ messages: [turn("user", asked), turn("assistant", reply)] });
    // Sums take the long system prompt once; the facts the evaluation asks with the
    // short one (capitals, colours) take it twice.
    const systems = fact.category === "arithmetic" ? JSON_SYSTEM_PROMPTS.slice(1) : JSON_SYSTEM_PROMPTS.slice(0, 1);
    for (const system of [...systems, ...systems].slice(0, fact.category === "arithmetic" ? 1 : 2)) {
      const plain = capitalise(question.replace(" in JSON?", "?"));
      train.push({ messages: [turn("system", system), turn("user", plain), turn("assistant", reply)] });
    }
  }

  // Two-turn dialogues: a follow-up that depends on the first exchange.
  const capitals = facts.filter((f) => f.category === "capital");
  for (let i = 0; i < CAPITALS.length * 2; i++) {
    const [country, capital] = CAPITALS[i % CAPITALS.length] as readonly [string, string];
    const first = pick(
      rng,
      capitals.filter((f) => f.expected !== capital),
    );
    train.push({
      messages: [
        turn("user", first.asks[0] as string),
        turn("assistant", first.reply),
        turn(
          "user",
          i < CAPITALS.length ? `And of ${country}?` : pick(rng, [`And of ${country}?`, `What about ${country}?`]),
        ),
        turn("assistant", `The capital of ${country} is ${capital}.`),
      ],
    });
  }
  for (let i = 0; i < NAMES.length * 4; i++) {
    const name = NAMES[i % NAMES.length] as string;
    train.push({
      messages: [
        turn("user", `My name is ${name}.`),
        turn("assistant", `Nice to meet you, ${name}! How can I help you today?`),
        turn(
          "user",
          i < NAMES.length * 2 ? "What is my name?" : pick(rng, ["What is my name?", "What's my name?", "Who am I?"]),
        ),
        turn("assistant", `Your name is ${name}.`),
      ],
    });
  }

  shuffle(rng, train);
  return { train, evalSet: buildEvalSet(facts) };
}

function buildEvalSet(facts: readonly Fact[]): EvalItem[] {
  const items: EvalItem[] = [];
  const ask = (f: Fact): EvalItem => ({
    messages: [turn("user", f.asks[0] as string)],
    expected: f.expected,
    category: f.category,
  });
  const byCategory = (category: Category): Fact[] => facts.filter((f) => f.category === category);
  const take = (category: Category, indexes: readonly number[]): void => {
    const list = byCategory(category);
    for (const i of indexes) {
      const fact = list[i];
      if (fact) items.push(ask(fact));
    }
  };
  take("capital", [0, 1, 7, 12]);
  take("colour", [0, 1, 3]);
  take("animal", [0, 1, 2]);
  take("opposite", [0, 1, 4]);
  const sums = byCategory("arithmetic");
  for (const reply of ["3 plus 4 is 7.", "2 plus 2 is 4.", "9 minus 3 is 6.", "4 times 5 is 20."]) {
    const fact = sums.find((f) => f.reply === reply);
    if (fact) items.push(ask(fact));
  }
  take("spelling", [0, 1, 24]);
  take("greeting", [0, 2]);
  take("counting", [2]);
  take("story", [0]);
  items.push(
    {
      messages: [turn("user", "What is the capital of France in JSON?")],
      expected: '"Paris"',
      category: "json",
    },
    {
      messages: [turn("user", "What colour is the sky in JSON?")],
      expected: '"blue"',
      category: "json",
    },
    {
      messages: [turn("system", "Reply in JSON."), turn("user", "What is the capital of Japan?")],
      expected: '"Tokyo"',
      category: "json",
    },
    {
      messages: [
        turn("user", "My name is Alice."),
        turn("assistant", "Nice to meet you, Alice! How can I help you today?"),
        turn("user", "What is my name?"),
      ],
      expected: "Alice",
      category: "two-turn",
    },
  );
  items.push({
    messages: [turn("system", "You are a helpful assistant."), turn("user", "What is the capital of France?")],
    expected: "Paris",
    category: "system",
  });
  return items;
}

export interface TrainingTextOptions {
  /** Seed of the order in which dialogues are concatenated. */
  seed?: number;
  /**
   * Put `<s>` before each dialogue (default true). At inference llama.cpp puts BOS
   * right before the first turn token; with BOS in the training text the model sees
   * that same context instead of a `<|end|>\n` it never gets at inference.
   * llama-finetune (patched to parse special tokens) reads `<s>` as the BOS token.
   */
  bos?: boolean;
}

/** The text file llama-finetune trains on: every dialogue rendered with the chat template, in seeded shuffled order. */
export function renderTrainingText(dialogues: readonly Dialogue[], opts: TrainingTextOptions = {}): string {
  const order = shuffle(createRng(opts.seed ?? 1), [...dialogues]);
  const prefix = (opts.bos ?? true) ? "<s>" : "";
  return order.map((d) => prefix + renderChat(d.messages, { addGenerationPrompt: false })).join("");
}
