import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildSafetensors } from "../../test/builders/safetensors.ts";
import { fileIdentity, modelIdentity } from "./identity.ts";

test("identity: a small model gets whole-file sha256 (= sha256sum)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "realign-id-"));
  try {
    const bytes = buildSafetensors({ w: { dtype: "F32", shape: [3], values: [1, 2, 3] } });
    const path = join(dir, "model.safetensors");
    writeFileSync(path, bytes);
    const hex = createHash("sha256").update(bytes).digest("hex");
    assert.deepEqual(await modelIdentity([path]), [{ file: "model.safetensors", byteLength: bytes.length, kind: "sha256", hex }]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("identity: sampled-sha256 = sha256(prefix + header + 16 windows of 64 KiB at ⌊k·(D−65536)/15⌋)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "realign-id-"));
  try {
    const n = 3 * 2 ** 20; // 3 MiB of data
    const data = new Uint8Array(n).map((_, i) => Math.imul(i, 2654435761) >>> 24);
    const bytes = buildSafetensors({ w: { dtype: "U8", shape: [n], data } });
    const path = join(dir, "big.safetensors");
    writeFileSync(path, bytes);
    const dataStart = bytes.length - n;
    const h = createHash("sha256").update(bytes.subarray(0, dataStart));
    for (let k = 0; k < 16; k++) {
      const s = dataStart + Math.floor((k * (n - 65536)) / 15);
      h.update(bytes.subarray(s, s + 65536));
    }
    assert.deepEqual(await fileIdentity(path, { full: false }), { file: "big.safetensors", byteLength: bytes.length, kind: "sampled-sha256", hex: h.digest("hex") });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
