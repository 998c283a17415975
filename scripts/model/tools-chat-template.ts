/**
 * The chat template of `tiny-tools`: Hermes / Qwen 2.5 tool calling (calls written as `<tool_call>\n{"name": …, "arguments": …}\n</tool_call>`,
 * results returned inside <tool_response></tool_response> in a user turn), on the tiny model's
 * own turn tokens (<|system|>, <|user|>, <|assistant|>, <|end|>) instead of ChatML's. The tools
 * are listed in the system turn by name and parameters only (`Tools: get_weather(city)`), not as
 * Hermes' full JSON: the tiny model works within a few hundred tokens (its training windows
 * are 256 long), and Hermes' tool descriptions alone take ~600 of its tokens. Kept to plain
 * Jinja that @huggingface/jinja and llama.cpp's minja both render.
 */
export const TOOLS_CHAT_TEMPLATE = [
  "{%- if tools -%}",
  "{{- '<|system|>\\n' -}}",
  "{%- if messages[0]['role'] == 'system' -%}{{- messages[0]['content'] + '\\n' -}}{%- endif -%}",
  "{{- 'Tools:' -}}",
  "{%- for tool in tools -%}",
  "{{- ' ' + tool['function']['name'] + '(' -}}",
  "{%- if tool['function']['parameters'] and tool['function']['parameters']['properties'] -%}",
  "{%- for name, schema in tool['function']['parameters']['properties'].items() -%}",
  "{%- if not loop.first -%}{{- ', ' -}}{%- endif -%}{{- name -}}",
  "{%- endfor -%}",
  "{%- endif -%}",
  "{{- ')' -}}",
  "{%- endfor -%}",
  "{{- '<|end|>\\n' -}}",
  "{%- elif messages[0]['role'] == 'system' -%}",
  "{{- '<|system|>\\n' + messages[0]['content'] + '<|end|>\\n' -}}",
  "{%- endif -%}",
  "{%- for message in messages -%}",
  "{%- if message['role'] == 'user' or (message['role'] == 'system' and not loop.first) -%}",
  "{{- '<|user|>\\n' + message['content'] + '<|end|>\\n' -}}",
  "{%- elif message['role'] == 'assistant' -%}",
  "{{- '<|assistant|>\\n' -}}",
  "{%- if message['content'] -%}{{- message['content'] -}}{%- endif -%}",
  "{%- if message['tool_calls'] -%}",
  "{%- for tool_call in message['tool_calls'] -%}",
  "{%- if message['content'] or not loop.first -%}{{- '\\n' -}}{%- endif -%}",
  "{%- set call = tool_call['function'] -%}",
  "{{- '<tool_call>\\n{\"name\": \"' + call['name'] + '\", \"arguments\": ' + (call['arguments'] | tojson) + '}\\n</tool_call>' -}}",
  "{%- endfor -%}",
  "{%- endif -%}",
  "{{- '<|end|>\\n' -}}",
  "{%- elif message['role'] == 'tool' -%}",
  "{%- if loop.first or messages[loop.index0 - 1]['role'] != 'tool' -%}{{- '<|user|>' -}}{%- endif -%}",
  "{{- '\\n<tool_response>\\n' + message['content'] + '\\n</tool_response>' -}}",
  "{%- if loop.last or messages[loop.index0 + 1]['role'] != 'tool' -%}{{- '<|end|>\\n' -}}{%- endif -%}",
  "{%- endif -%}",
  "{%- endfor -%}",
  "{%- if add_generation_prompt -%}{{- '<|assistant|>\\n' -}}{%- endif -%}",
].join("\n");

/**
 * Text the template and the model's calls write, added to the vocabulary as whole tokens
 * (scripts/model/added-tokens.ts), as Qwen 2.5 carries `<tool_call>`. In the base vocabulary's
 * pieces `<tool_call>\n{"name": "` is 13 tokens, and the tiny model, which attends reliably to
 * about 8, wrote the same name for every request; as `<tool_call>`, `\n`, `{"name": "` the
 * request's last word is 7 tokens before the name. `, "arguments": ` does the same for the
 * argument names, which follow from the tool's name.
 */
export const TOOLS_ADDED_TOKENS = ["<tool_call>", "</tool_call>", '{"name": "', ', "arguments": '];
