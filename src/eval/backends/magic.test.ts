import { test } from "node:test";
import assert from "node:assert/strict";
import { describeMagic, printable } from "./llama.ts";

test("describeMagic: hex and an escaped string, never raw bytes", () => {
  assert.equal(describeMagic(new Uint8Array([0x7b, 0x0a, 0x20, 0x20])), '7b 0a 20 20 ("{\\n  ")');
  assert.equal(describeMagic(new Uint8Array([0x50, 0x4b, 0x03, 0x04])), '50 4b 03 04 ("PK\\x03\\x04")');
  assert.equal(describeMagic(new Uint8Array([0x22, 0x5c, 0xff])), '22 5c ff ("\\"\\\\\\xff")');
  assert.equal(describeMagic(new Uint8Array([])), "nothing (empty file)");
});

test("printable: control characters escaped, text kept", () => {
  assert.equal(printable('got "\u0000\u0001\n"'), 'got "\\x00\\x01\\n"');
  assert.equal(printable("λ = 0.5"), "λ = 0.5");
});
