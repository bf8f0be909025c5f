/**
 * In-memory shapes of a GGUF file: typed metadata values (the type is kept so a file re-writes byte for
 * byte), tensor infos, and the parsed header.
 */
import type { GgmlTypeName, GgufValueTypeName } from "./constants.ts";

/** A numeric scalar stored in 32 bits or fewer, or a float64. */
export type GgufNumberType = "u8" | "i8" | "u16" | "i16" | "u32" | "i32" | "f32" | "f64";
/** 64-bit integers are bigint so no precision is lost. */
export type GgufBigIntType = "u64" | "i64";

/** One typed metadata value. Arrays carry their item type; nested arrays hold GgufArray items. */
export type GgufValue =
  | { type: GgufNumberType; value: number }
  | { type: GgufBigIntType; value: bigint }
  | { type: "bool"; value: boolean }
  | { type: "string"; value: string }
  | GgufArray;

export type GgufArray =
  | { type: "array"; itemType: GgufNumberType; value: number[] }
  | { type: "array"; itemType: GgufBigIntType; value: bigint[] }
  | { type: "array"; itemType: "bool"; value: boolean[] }
  | { type: "array"; itemType: "string"; value: string[] }
  | { type: "array"; itemType: "array"; value: GgufArray[] };

/** Ordered key → typed value (insertion order is file order). */
export type GgufMetadata = Map<string, GgufValue>;

/** A tensor as declared in the header. */
export interface GgufTensorInfo {
  name: string;
  /** ggml order: ne[0] (innermost, contiguous) first. The reverse of the PyTorch/safetensors shape. */
  shape: number[];
  type: GgmlTypeName;
  /** Offset of the data relative to the start of the data section (a multiple of the alignment). */
  offset: number;
  /** Bytes of data: elementCount / blockSize × typeSize. */
  byteLength: number;
  /** Product of the shape. */
  elementCount: number;
}

/** A parsed GGUF header: everything before the tensor data. */
export interface GgufHeader {
  /** File the header came from (for error messages), or a label for in-memory bytes. */
  file: string;
  version: number;
  metadata: GgufMetadata;
  tensors: GgufTensorInfo[];
  /** `general.alignment` or the default 32. */
  alignment: number;
  /** Absolute byte offset of the data section. */
  dataOffset: number;
  /** Total bytes of the file. */
  fileSize: number;
}

/** Declared tensor for the writer: shape in ggml order, as in GgufTensorInfo. */
export interface GgufTensorDecl {
  name: string;
  shape: number[];
  type: GgmlTypeName;
}

export type { GgufValueTypeName };
