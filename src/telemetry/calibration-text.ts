// A fixed sample of typical chat traffic (questions, prose, lists, code, JSON, numbers),
// tokenized once by each local model and once by each reference model's encoding: the
// ratio of the two counts turns a local model's exact counts into the reference model's.
export const CALIBRATION_TEXT = `You are a helpful assistant. Answer briefly and accurately.

User: What is the capital of France, and roughly how many people live there?
Assistant: The capital of France is Paris. About 2.1 million people live in the city itself and roughly 12 million in the greater metropolitan area.

User: Can you summarise the following paragraph in one sentence?
"The committee met on Tuesday to review the quarterly budget. After a long discussion, members agreed to postpone the new hiring plan until the second half of the year, citing lower-than-expected revenue in the first quarter and rising infrastructure costs."
Assistant: The committee postponed its hiring plan to the second half of the year because first-quarter revenue was low and infrastructure costs rose.

User: Write a Python function that returns the n-th Fibonacci number.
Assistant: Here is an iterative version that runs in linear time:

\`\`\`python
def fibonacci(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a
\`\`\`

User: Convert this to TypeScript and add a check for negative input.
Assistant:
\`\`\`ts
export function fibonacci(n: number): number {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(\`expected a non-negative integer, got \${n}\`);
  let [a, b] = [0, 1];
  for (let i = 0; i < n; i++) [a, b] = [b, a + b];
  return a;
}
\`\`\`

User: Extract the order as JSON: "Two large pizzas with extra cheese and one lemonade, delivered to 42 Elm Street at 7:30 pm."
Assistant: {"items": [{"name": "pizza", "size": "large", "quantity": 2, "extras": ["extra cheese"]}, {"name": "lemonade", "quantity": 1}], "delivery": {"address": "42 Elm Street", "time": "19:30"}}

User: List three tips for writing clear emails.
Assistant:
1. Put the request or the main point in the first two lines.
2. Keep paragraphs short, and use bullet points for steps or options.
3. End with what you need from the reader and by when, e.g. "Please confirm by Friday, 12 June."

User: I have 3,450 EUR and the exchange rate is 1.0845 USD per EUR. How many dollars is that, rounded to cents?
Assistant: 3,450 × 1.0845 = 3,741.525, so about $3,741.53.

User: Why is the sky blue?
Assistant: Sunlight is scattered by the molecules in the air, and shorter (blue) wavelengths are scattered much more strongly than longer (red) ones. This is called Rayleigh scattering, so blue light reaches our eyes from every direction of the sky.

User: Thanks! One last thing: translate "Where is the train station?" into Spanish and German.
Assistant: Spanish: «¿Dónde está la estación de tren?» German: „Wo ist der Bahnhof?"
`;
