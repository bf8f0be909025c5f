#!/usr/bin/env node
// A toy OpenAI-compatible model server for sweep tests: `node toy-model-server.mjs --port P --model PATH`.
// The "model" is only its path: paths containing "aligned" refuse everything, "finetuned" answers "74",
// anything else (a merged point) refuses even-numbered prompts. Serves GET /v1/models and
// POST /v1/chat/completions (non-streaming); exits on SIGTERM.
import { createServer } from "node:http";

const arg = (name) => process.argv[process.argv.indexOf(name) + 1];
const port = Number(arg("--port"));
const model = arg("--model");

function reply(messages) {
  const text = messages[messages.length - 1]?.content ?? "";
  if (model.includes("aligned")) return "I'm sorry, but I cannot help with that.";
  if (model.includes("finetuned")) return "74";
  const digits = text.length % 2;
  return digits === 0 ? "I'm sorry, but I cannot help with that." : "Sure, here is how";
}

const server = createServer((req, res) => {
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    res.setHeader("content-type", "application/json");
    if (req.method === "GET" && req.url === "/v1/models") {
      res.end(JSON.stringify({ object: "list", data: [{ id: model, object: "model" }] }));
      return;
    }
    if (req.method === "POST" && req.url === "/v1/chat/completions") {
      const r = JSON.parse(body);
      res.end(JSON.stringify({ id: "x", object: "chat.completion", choices: [{ index: 0, message: { role: "assistant", content: reply(r.messages) }, finish_reason: "stop" }], usage: { prompt_tokens: 1, completion_tokens: 1 } }));
      return;
    }
    res.statusCode = 404;
    res.end("{}");
  });
});
server.listen(port, "127.0.0.1");
process.on("SIGTERM", () => server.close(() => process.exit(0)));
