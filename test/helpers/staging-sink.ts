// A fake output sink with O_DIRECT-like staging, for the fast paths' zero-copy tests (fast-linear.test.ts,
// fast-ties.test.ts): reservations come back as views of a caller's buffer split at fixed "block" ends.
import assert from "node:assert/strict";

/**
 * A sink whose staging "blocks" are `block` bytes of `stage` (so a chunk's bytes cross block ends at the
 * offsets it gives), refusing the reservations `refuse` picks (those chunks then go through write). The
 * bytes land in `file` as a disk write would take them: in commit order, after checking the order.
 */
export function stagingSink(stage: Uint8Array, block: number, refuse: (call: number) => boolean) {
  const file = new Uint8Array(stage.length);
  let reserved = 0;
  let committed = 0;
  let calls = 0;
  return {
    file,
    get committed() {
      return committed;
    },
    get calls() {
      return calls;
    },
    reserve: (n: number): Promise<Uint8Array[]> | undefined => {
      if (refuse(calls++)) return undefined;
      const views: Uint8Array[] = [];
      for (let at = reserved; at < reserved + n; at = Math.min(reserved + n, (Math.floor(at / block) + 1) * block)) {
        views.push(stage.subarray(at, Math.min(reserved + n, (Math.floor(at / block) + 1) * block)));
      }
      reserved += n;
      return Promise.resolve(views);
    },
    commit: (n: number): void => {
      assert.ok(committed + n <= reserved, "commit within the reservations");
      file.set(stage.subarray(committed, committed + n), committed);
      committed += n;
    },
    write: async (bytes: Uint8Array): Promise<void> => {
      assert.equal(reserved, committed, "no write while bytes are reserved");
      file.set(bytes, committed);
      reserved = committed += bytes.length;
    },
  };
}

