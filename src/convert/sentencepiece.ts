/**
 * A minimal reader for SentencePiece `tokenizer.model` (protobuf ModelProto): pieces (text, score, type)
 * and normalizer_spec.add_dummy_prefix — what llama.cpp's _set_vocab_sentencepiece writes to GGUF.
 * Field numbers from sentencepiece_model.proto: ModelProto.pieces = 1, .normalizer_spec = 3;
 * SentencePiece.piece = 1, .score = 2, .type = 3 (NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4,
 * UNUSED 5, BYTE 6 — the same numbers as GGUF token types); NormalizerSpec.add_dummy_prefix = 3.
 */
import { FormatError } from "../errors.ts";

export interface SentencePiece {
  piece: string;
  score: number;
  type: number;
}

/** Bounds a crafted piece count (real vocabularies ≤ 2^18). */
const MAX_PIECES = 1 << 22;

class Pb {
  pos = 0;
  constructor(
    readonly buf: Uint8Array,
    readonly file: string,
    readonly end = buf.length,
  ) {}
  fail(what: string): never {
    throw new FormatError("convert.bad_sentencepiece", `SentencePiece model ${this.file}: ${what} at byte ${this.pos}`, { details: { file: this.file, offset: this.pos } });
  }
  varint(): number {
    let result = 0;
    let shift = 0;
    for (;;) {
      if (this.pos >= this.end) this.fail("truncated varint");
      const b = this.buf[this.pos++]!;
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
      shift += 7;
      if (shift > 63) this.fail("varint too long");
    }
  }
  bytes(): Uint8Array {
    const len = this.varint();
    if (this.pos + len > this.end) this.fail(`length ${len} past the end`);
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }
  f32(): number {
    if (this.pos + 4 > this.end) this.fail("truncated float");
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 4).getFloat32(0, true);
    this.pos += 4;
    return v;
  }
  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.bytes();
    else if (wire === 5) this.pos += 4;
    else this.fail(`unsupported wire type ${wire}`);
    if (this.pos > this.end) this.fail("field past the end");
  }
}

/** Parses tokenizer.model bytes. @throws FormatError on malformed protobuf. */
export function parseSentencePieceModel(bytes: Uint8Array, file: string): { pieces: SentencePiece[]; addDummyPrefix: boolean } {
  const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
  const pb = new Pb(bytes, file);
  const pieces: SentencePiece[] = [];
  let addDummyPrefix = true;
  while (pb.pos < pb.end) {
    const tag = pb.varint();
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (field === 1 && wire === 2) {
      const sub = pb.bytes();
      const p = new Pb(sub, file);
      const piece: SentencePiece = { piece: "", score: 0, type: 1 };
      while (p.pos < p.end) {
        const t = p.varint();
        const f = Math.floor(t / 8);
        const w = t & 7;
        if (f === 1 && w === 2) piece.piece = decoder.decode(p.bytes());
        else if (f === 2 && w === 5) piece.score = p.f32();
        else if (f === 3 && w === 0) piece.type = p.varint();
        else p.skip(w);
      }
      pieces.push(piece);
      if (pieces.length > MAX_PIECES) pb.fail(`more than ${MAX_PIECES} pieces`);
    } else if (field === 3 && wire === 2) {
      const sub = pb.bytes();
      const p = new Pb(sub, file);
      while (p.pos < p.end) {
        const t = p.varint();
        if (Math.floor(t / 8) === 3 && (t & 7) === 0) addDummyPrefix = p.varint() !== 0;
        else p.skip(t & 7);
      }
    } else {
      pb.skip(wire);
    }
  }
  if (pieces.length === 0) pb.fail("no pieces");
  return { pieces, addDummyPrefix };
}
