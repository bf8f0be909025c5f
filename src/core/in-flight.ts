/**
 * The promises a streaming pipeline has started and not yet seen settle (reads ahead, writes behind,
 * computations handed to workers). The chunk loops of the merge and convert fast paths wait for all of
 * them at the end, and on an error let every one settle before rejecting, so nothing still writes into a
 * buffer or a file the caller is about to release or remove.
 */
export class InFlight {
  private readonly pending = new Set<Promise<unknown>>();
  /** The first rejection among the tracked promises, once one has rejected. */
  failure: { readonly err: unknown } | undefined;

  /** Tracks `p` until it settles. @returns p */
  track<T>(p: Promise<T>): Promise<T> {
    this.pending.add(p);
    void p.then(
      () => this.pending.delete(p),
      (err: unknown) => {
        this.pending.delete(p);
        this.failure ??= { err };
      },
    );
    return p;
  }

  /** Resolves when every promise tracked so far has fulfilled; rejects as soon as one of them rejects. */
  async all(): Promise<void> {
    await Promise.all([...this.pending]);
  }

  /** Resolves when every promise tracked so far has settled, fulfilled or not. Never rejects. */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.pending]);
  }
}
