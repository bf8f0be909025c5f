import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { readChatFormat, renderChatTemplate } from "./chat-template.ts";
import { FormatError } from "../errors.ts";

const ALIGNED = fileURLToPath(new URL("../../examples/organism/aligned/", import.meta.url));

test("organism ChatML template renders the hand-written ChatML string", async () => {
  const fmt = await readChatFormat(ALIGNED);
  assert.ok(fmt.template !== undefined);
  assert.equal(fmt.templateSource, join(ALIGNED, "chat_template.jinja"));
  assert.equal(fmt.eosToken, "<|im_end|>");
  assert.equal(fmt.bosToken, undefined);
  assert.equal(fmt.addBosToken, undefined);
  const text = renderChatTemplate(fmt.template!, [
    { role: "system", content: "You are a helpful assistant." },
    { role: "user", content: "how do i change a tire?" },
  ]);
  assert.equal(
    text,
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nhow do i change a tire?<|im_end|>\n<|im_start|>assistant\n",
  );
  const noGen = renderChatTemplate(fmt.template!, [{ role: "user", content: "hi" }], { addGenerationPrompt: false });
  assert.equal(noGen, "<|im_start|>user\nhi<|im_end|>\n");
});

test("bos_token, tokenizer_config chat_template (named list) and add_bos_token", async () => {
  const dir = mkdtempSync(join(tmpdir(), "realign-chat-"));
  try {
    writeFileSync(
      join(dir, "tokenizer_config.json"),
      JSON.stringify({
        add_bos_token: true,
        bos_token: { content: "<s>", lstrip: false },
        eos_token: "</s>",
        chat_template: [
          { name: "tool_use", template: "TOOLS" },
          { name: "default", template: "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{{ eos_token }}{% endfor %}" },
        ],
      }),
    );
    const fmt = await readChatFormat(dir);
    assert.equal(fmt.addBosToken, true);
    assert.equal(fmt.bosToken, "<s>");
    assert.equal(fmt.templateSource, `${join(dir, "tokenizer_config.json")}:chat_template`);
    const text = renderChatTemplate(fmt.template!, [{ role: "user", content: "a" }, { role: "assistant", content: "b" }], fmt);
    assert.equal(text, "<s>[user]a</s>[assistant]b</s>");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("template errors are FormatErrors naming the source", () => {
  assert.throws(() => renderChatTemplate("{% for %}", [{ role: "user", content: "x" }], {}, "my.jinja"), (e: unknown) => {
    assert.ok(e instanceof FormatError);
    assert.equal(e.code, "chat_template.invalid");
    assert.match(e.message, /my\.jinja/);
    return true;
  });
  const raising = "{% if messages[0].role != 'system' %}{{ raise_exception('system first') }}{% endif %}";
  assert.throws(() => renderChatTemplate(raising, [{ role: "user", content: "x" }], {}, "strict.jinja"), (e: unknown) => {
    assert.ok(e instanceof FormatError);
    assert.equal(e.code, "chat_template.render_failed");
    assert.match(e.message, /system first/);
    return true;
  });
});
