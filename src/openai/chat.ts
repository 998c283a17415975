// The chat completions wire format in one import: request (chat-request.ts), responses
// (chat-response.ts) and what of a request this server refuses (chat-support.ts).
export * from "./chat-request.ts";
export * from "./chat-response.ts";
export * from "./chat-support.ts";
