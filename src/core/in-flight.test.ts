import { test } from "node:test";
import assert from "node:assert/strict";
import { InFlight } from "./in-flight.ts";

test("InFlight: all() waits for every tracked promise, keeps the first rejection, settle() never rejects", async () => {
  const f = new InFlight();
  const order: string[] = [];
  f.track(new Promise<void>((r) => setTimeout(() => (order.push("slow"), r()), 20)));
  assert.equal(await f.track(Promise.resolve(7)), 7);
  await f.all();
  assert.deepEqual(order, ["slow"]);
  assert.equal(f.failure, undefined);

  const first = new Error("first");
  f.track(Promise.reject(first)).catch(() => {});
  f.track(new Promise<void>((_, rej) => setTimeout(() => rej(new Error("second")), 5))).catch(() => {});
  await assert.rejects(f.all(), /first/);
  await f.settle();
  assert.equal((f.failure as InFlight["failure"])?.err, first); // (TypeScript narrowed it to undefined above)
  await f.all(); // everything settled and untracked
});
