import { test, after } from "node:test";
import assert from "node:assert/strict";
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeToF32, encodeFromF32 } from "../../core/dtype.ts";
import { linear } from "../methods/linear.ts";
import { taskArithmetic } from "../methods/task-arithmetic.ts";
import type { MergeMethod, ResolvedParams, TensorContext } from "../methods/types.ts";
import { linearFormOf } from "../kernels/linear-form.ts";
import { fusedBf16, fusedBlocked } from "../kernels/fused.ts";
import { KernelPool } from "./pool.ts";
import { fastLinearMemoryBytes, runFastLinear, type FastJob } from "./fast-linear.ts";
import { stagingSink } from "../../../test/helpers/staging-sink.ts";

/** Deterministic bf16 test data: random codes, plus specials (±0, ±Inf, NaNs, subnormals, max, ties). */
function bf16Data(n: number, seed: number): Uint16Array {
  const out = new Uint16Array(n);
  let s = seed | 0 || 1;
  const specials = [0x0000, 0x8000, 0x7f80, 0xff80, 0x7fc0, 0xffc1, 0x7f81, 0x0001, 0x8001, 0x007f, 0x7f7f, 0xff7f, 0x3f80, 0x3f81, 0x0080];
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    // 1 in 16: a special; 1 in 4: a value near the first input's (so sums cancel and round on ties)
    out[i] = (s & 15) === 0 ? specials[(s >>> 4) % specials.length]! : (s >>> 8) & 0xffff;
  }
  return out;
}

/** The generic path: decode → method.kernel (float32) → encode bf16. */
function reference(method: MergeMethod<unknown>, params: ResolvedParams, base: Uint16Array | undefined, models: Uint16Array[]): Uint16Array {
  const n = models[0]!.length;
  const dec = (x: Uint16Array): Float32Array => {
    const f = new Float32Array(n);
    decodeToF32("BF16", new Uint8Array(x.buffer, x.byteOffset, n * 2), f, n);
    return f;
  };
  const out = new Float32Array(n);
  const ctx: TensorContext = { name: "t", shape: [n], numel: n, layerIndex: undefined, seed: 0 };
  method.kernel({ base: base && dec(base), models: models.map(dec), offset: 0 }, out, undefined, ctx, params);
  const bytes = new Uint8Array(n * 2);
  encodeFromF32("BF16", out, bytes, n);
  return new Uint16Array(bytes.buffer);
}

interface Case {
  readonly name: string;
  readonly method: MergeMethod<unknown>;
  readonly params: ResolvedParams;
  readonly models: number;
  readonly base: boolean;
}

const CASES: Case[] = [
  { name: "linear λ=0.3 (two terms)", method: linear as MergeMethod<unknown>, params: { global: {}, perModel: [{ weight: 0.7 }, { weight: 0.3 }] }, models: 2, base: false },
  { name: "linear unnormalized weights (divisor)", method: linear as MergeMethod<unknown>, params: { global: {}, perModel: [{ weight: 0.6 }, { weight: 0.9 }] }, models: 2, base: false },
  { name: "linear λ=0 (one term: copy)", method: linear as MergeMethod<unknown>, params: { global: {}, perModel: [{ weight: 1 }, { weight: 0 }] }, models: 2, base: false },
  { name: "linear three models", method: linear as MergeMethod<unknown>, params: { global: { normalize: false }, perModel: [{ weight: 0.2 }, { weight: 0.5 }, { weight: 0.3 }] }, models: 3, base: false },
  { name: "linear three models, normalized (k-term path with divisor)", method: linear as MergeMethod<unknown>, params: { global: {}, perModel: [{ weight: 0.2 }, { weight: 0.5 }, { weight: 0.4 }] }, models: 3, base: false },
  { name: "task_arithmetic λ=0.5", method: taskArithmetic as MergeMethod<unknown>, params: { global: { lambda: 0.5 }, perModel: [{ weight: 1 }] }, models: 1, base: true },
  { name: "task_arithmetic two models, normalize", method: taskArithmetic as MergeMethod<unknown>, params: { global: { lambda: 0.8, normalize: true }, perModel: [{ weight: 0.4 }, { weight: 1.1 }] }, models: 2, base: true },
  { name: "all-zero weights", method: linear as MergeMethod<unknown>, params: { global: { normalize: false }, perModel: [{ weight: 0 }, { weight: 0 }] }, models: 2, base: false },
];

const pool = KernelPool.available() ? KernelPool.start({ memoryBytes: fastLinearMemoryBytes(3, 2, { chunkElems: 4096, slots: 3 }) + (1 << 20), workers: 2 }) : undefined;
after(() => pool?.close());

/** A case's random bf16 inputs (the base seeded `baseSeed`, model m `modelSeed(m)`), the generic path's bytes for them and the case's linear form. */
function caseData(c: Case, n: number, baseSeed: number, modelSeed: (m: number) => number) {
  const base = c.base ? bf16Data(n, baseSeed) : undefined;
  const models = Array.from({ length: c.models }, (_, m) => bf16Data(n, modelSeed(m)));
  return { base, models, want: reference(c.method, c.params, base, models), form: linearFormOf(c.method.name, c.params, c.models)! };
}

function termsOf(form: NonNullable<ReturnType<typeof linearFormOf>>, base: Uint16Array | undefined, models: Uint16Array[]): Uint16Array[] {
  return form.terms.map((t) => (t.input.kind === "base" ? base! : models[t.input.index]!));
}

for (const c of CASES) {
  test(`fused TypeScript and blocked kernels equal the generic path byte for byte: ${c.name}`, () => {
    const n = 20011;
    const { base, models, want, form } = caseData(c, n, 99, (m) => 7 + m);
    const xs = termsOf(form, base, models);
    const got = new Uint16Array(n);
    fusedBf16(xs, form.terms.map((t) => t.coef), form.divisor, got, n);
    assert.deepEqual(got, want);
    const got2 = new Uint8Array(n * 2);
    fusedBlocked(
      xs.map((x, i) => ({ dtype: "BF16", bytes: new Uint8Array(x.buffer), coef: form.terms[i]!.coef })),
      form.divisor,
      "BF16",
      got2,
      n,
    );
    assert.deepEqual(new Uint16Array(got2.buffer), want);
  });

  test(`WebAssembly pipeline (workers, chunks, tails) equals the generic path byte for byte: ${c.name}`, { skip: pool === undefined && "no WebAssembly SIMD" }, async () => {
    // sizes: tail-only, local (small), multi-chunk with a ragged tail
    const sizes = [5, 1000, 4096 * 3 + 13];
    const wants: Uint16Array[] = [];
    const outs: Uint16Array[] = [];
    const jobs: FastJob[] = sizes.map((n, j) => {
      const { base, models, want, form } = caseData(c, n, 1000 + j, (m) => 31 * j + m + 1);
      wants.push(want);
      const out = new Uint16Array(n).fill(0xdead);
      outs.push(out);
      const src = termsOf(form, base, models);
      return {
        numel: n,
        divisor: form.divisor,
        terms: form.terms.map((t, i) => ({
          coef: t.coef,
          read: async (off: number, dst: Uint8Array) => dst.set(new Uint8Array(src[i]!.buffer, off, dst.length)),
        })),
        write: async (off: number, bytes: Uint8Array) => new Uint8Array(out.buffer).set(bytes, off),
      };
    });
    await runFastLinear(jobs, pool!, { chunkElems: 4096, slots: 3 });
    for (let j = 0; j < sizes.length; j++) assert.deepEqual(outs[j], wants[j], `job ${j} (${sizes[j]} elements)`);
  });
}

/** A job over the in-memory terms `src` (n elements each) of linear form `form`, writing to and reserving in `sink`. */
function stagedJob(n: number, form: NonNullable<ReturnType<typeof linearFormOf>>, src: readonly Uint16Array[], sink: ReturnType<typeof stagingSink>): FastJob {
  return {
    numel: n,
    divisor: form.divisor,
    terms: form.terms.map((t, i) => ({ coef: t.coef, read: async (off: number, dst: Uint8Array) => dst.set(new Uint8Array(src[i]!.buffer, off, dst.length)) })),
    write: (_off: number, bytes: Uint8Array) => sink.write(bytes),
    reserve: sink.reserve,
    commit: sink.commit,
  };
}

/** The expected output stream: the wants' bytes one after the other. */
function concatBytes(wants: readonly Uint16Array[]): Uint8Array {
  const out = new Uint8Array(wants.reduce((a, w) => a + w.length * 2, 0));
  wants.reduce((at, w) => (out.set(new Uint8Array(w.buffer, w.byteOffset, w.length * 2), at), at + w.length * 2), 0);
  return out;
}

test("merging straight into reserved output views (split at odd byte offsets, at an odd address, outside the pool's memory, some chunks written instead) gives the generic path's bytes in order", { skip: pool === undefined && "no WebAssembly SIMD" }, async () => {
  // blocks of 3001 bytes: a chunk's bytes cross block ends at odd offsets (copyBytes); "odd": one block
  // bigger than the output at an odd address (the kernels store straight to it)
  for (const c of [CASES[0]!, CASES[1]!, CASES[4]!, CASES[2]!, CASES[7]!]) {
    for (const [where, localMax] of [["pool", 0], ["pool", undefined], ["odd", 0], ["elsewhere", 0]] as const) {
      const sizes = [5, 1000, 4096 * 3 + 13];
      const total = sizes.reduce((a, n) => a + n * 2, 0);
      const mark = pool!.mark();
      try {
        const stage = where === "elsewhere" ? new Uint8Array(total) : pool!.bytes(pool!.alloc(total + 1) + (where === "odd" ? 1 : 0), total);
        stage.fill(0xee);
        const sink = stagingSink(stage, where === "odd" ? 2 * total : 3001, (call) => call % 3 === 1);
        const wants: Uint16Array[] = [];
        const jobs: FastJob[] = sizes.map((n, j) => {
          const { base, models, want, form } = caseData(c, n, 2000 + j, (m) => 13 * j + m + 5);
          wants.push(want);
          return stagedJob(n, form, termsOf(form, base, models), sink);
        });
        await runFastLinear(jobs, pool!, { chunkElems: 4096, slots: 3, ...(localMax === undefined ? {} : { localMax }) });
        assert.equal(sink.committed, total);
        assert.deepEqual(sink.file, concatBytes(wants), `${c.name}, views ${where}, localMax ${localMax}`);
        assert.ok(sink.calls >= 4, `${sink.calls} reservations`);
      } finally {
        pool!.release(mark);
      }
    }
  }
});

test("a sink that refuses every reservation: the chunks go through write and still overlap on the workers", { skip: pool === undefined && "no WebAssembly SIMD" }, async () => {
  const c = CASES[0]!;
  const n = 4096 * 16;
  const { base, models, want, form } = caseData(c, n, 77, (m) => m + 1);
  const src = termsOf(form, base, models);
  const sink = stagingSink(new Uint8Array(n * 2), 3001, () => true);
  const run = pool!.run.bind(pool!);
  let running = 0;
  let most = 0;
  pool!.run = (batches) => {
    most = Math.max(most, ++running);
    return run(batches).finally(() => running--);
  };
  try {
    await runFastLinear([stagedJob(n, form, src, sink)], pool!, { chunkElems: 4096, slots: 4, localMax: 0 });
  } finally {
    pool!.run = run;
  }
  assert.deepEqual(sink.file, concatBytes([want]));
  assert.equal(sink.calls, 2, "asked once, and once more after waiting for the first write; then no more");
  assert.ok(most >= 2, `at most ${most} chunk(s) on the workers at once`);
});

test("workers reading their chunks from file spans (blocks across chunk ends, ragged tails) give the generic path's bytes; a failed read reports the term reader's error", { skip: pool === undefined && "no WebAssembly SIMD" }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "realign-fast-linear-"));
  const fds: number[] = [];
  try {
    const HEADER = 77; // the data starts at an odd file offset, as a safetensors header leaves it
    for (const [c, staged] of [CASES[1]!, CASES[4]!, CASES[5]!].flatMap((x) => [[x, false], [x, true]] as const)) {
      const sizes = [4096 * 3 + 13, 9000];
      const wants: Uint16Array[] = [];
      const outs: Uint16Array[] = [];
      let mainReads = 0;
      // staged: the merged bytes go into reserved views in the pool's memory (blocks of 3001 bytes)
      const mark = pool!.mark();
      const total = sizes.reduce((a, n) => a + n * 2, 0);
      const sink = staged ? stagingSink(pool!.bytes(pool!.alloc(total), total), 3001, (call) => call === 0) : undefined;
      const jobs: FastJob[] = sizes.map((n, j) => {
        const { base, models, want, form } = caseData(c, n, 500 + j, (m) => 17 * j + m + 3);
        wants.push(want);
        const out = new Uint16Array(n).fill(0xdead);
        outs.push(out);
        return {
          numel: n,
          divisor: form.divisor,
          terms: termsOf(form, base, models).map((x, i) => {
            const path = join(dir, `${c.name.length}-${j}-${i}.bin`);
            writeFileSync(path, Buffer.concat([Buffer.alloc(HEADER, 0x55), Buffer.from(x.buffer, x.byteOffset, n * 2)]));
            const fd = openSync(path, "r");
            fds.push(fd);
            return {
              coef: form.terms[i]!.coef,
              span: { fd, offset: HEADER },
              read: async (off: number, dst: Uint8Array) => {
                mainReads++;
                readSync(fd, dst, 0, dst.length, HEADER + off);
              },
            };
          }),
          write: async (off: number, bytes: Uint8Array) => (sink === undefined ? new Uint8Array(out.buffer).set(bytes, off) : sink.write(bytes)),
          ...(sink === undefined ? {} : { reserve: sink.reserve, commit: sink.commit }),
        };
      });
      // 4096-element chunks on the workers (localMax 0), read in blocks of 1000 elements
      await runFastLinear(jobs, pool!, { chunkElems: 4096, slots: 3, localMax: 0, readBlockElems: 1000 });
      pool!.release(mark);
      if (sink === undefined) for (let j = 0; j < sizes.length; j++) assert.deepEqual(outs[j], wants[j], `${c.name}: job ${j}`);
      else assert.deepEqual(sink.file, concatBytes(wants), `${c.name}: staged`);
      assert.equal(mainReads, 0, "every chunk was read by its worker");
    }
    // a span past the end of its file: the worker's read fails, and the term reader's own error is thrown
    const short = join(dir, "short.bin");
    writeFileSync(short, Buffer.alloc(HEADER + 100));
    const fd = openSync(short, "r");
    fds.push(fd);
    const truncated = new Error("short.bin: truncated data");
    const job: FastJob = {
      numel: 4096,
      divisor: undefined,
      terms: [0.5, 0.5].map((coef) => ({
        coef,
        span: { fd, offset: HEADER },
        read: async () => {
          throw truncated;
        },
      })),
      write: async () => {},
    };
    await assert.rejects(runFastLinear([job], pool!, { chunkElems: 4096, slots: 2, localMax: 0 }), (e: unknown) => e === truncated);
  } finally {
    for (const fd of fds) closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
});

test("linearFormOf: hand-computed coefficients", () => {
  const f = linearFormOf("task_arithmetic", { global: { lambda: 0.5 }, perModel: [{ weight: 1 }] }, 1)!;
  assert.deepEqual(
    f.terms.map((t) => [t.input.kind, t.coef]),
    [
      ["base", 0.5],
      ["model", 0.5],
    ],
  );
  assert.equal(f.divisor, undefined);
  const l = linearFormOf("linear", { global: {}, perModel: [{ weight: 1 }, { weight: 3 }] }, 2)!;
  assert.equal(l.divisor, 4);
  assert.deepEqual(l.terms.map((t) => t.coef), [1, 3]);
  assert.equal(linearFormOf("ties", { global: {}, perModel: [] }, 2), undefined);
});

test("fast path memory is bounded by slots × (terms + 1) × chunk plus per-worker blocks, independent of tensor size", () => {
  const small = fastLinearMemoryBytes(2, 2);
  assert.ok(small < 64 * 1024 * 1024, `default pool ${small} bytes`);
  // 2 slots × 3 buffers × 1024 × 2 bytes + 3 float32 accumulators of 16384 + 2 workers' read buffers of
  // 2 terms × 1000 bf16 + alignment slack
  assert.equal(fastLinearMemoryBytes(2, 2, { chunkElems: 1024, slots: 2, readBlockElems: 1000 }), 2 * 3 * 1024 * 2 + 3 * 16384 * 4 + 2 * 2 * 1000 * 2 + 64 * 14);
});
