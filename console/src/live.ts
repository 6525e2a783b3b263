// The live feed: one WatchEvents stream over the principal's subtree, resumed after the last seq seen
// when it breaks, so no change is missed; the page says when it is reconnecting.

import { Code, isCode, tickets } from "./api";

export type LiveState = "connecting" | "connected" | "reconnecting";

export interface LiveHandlers {
  /** Tickets with new events (batched over a short moment). */
  changed(ids: Set<string>): void;
  /** The stream restarted without a seq to resume from: anything may have changed. */
  reload(): void;
  state(state: LiveState): void;
  /** The token no longer holds. */
  signedOut(): void;
}

const BATCH_MS = 100;

export function follow(handlers: LiveHandlers): () => void {
  const abort = new AbortController();
  let lastSeq = 0n;
  let pending = new Set<string>();
  let flush: ReturnType<typeof setTimeout> | undefined;

  const note = (id: string) => {
    pending.add(id);
    flush ??= setTimeout(() => {
      const ids = pending;
      pending = new Set();
      flush = undefined;
      handlers.changed(ids);
    }, BATCH_MS);
  };

  void (async () => {
    let attempt = 0;
    while (!abort.signal.aborted) {
      handlers.state(attempt === 0 ? "connecting" : "reconnecting");
      const resumed = lastSeq;
      try {
        const stream = tickets.watchEvents(
          { node: "", afterSeq: lastSeq },
          {
            signal: abort.signal,
            onHeader: () => {
              handlers.state("connected");
              // Without a seq to resume after, the events missed while away are unknown.
              if (attempt > 0 && resumed === 0n) handlers.reload();
              attempt = 0;
            },
          },
        );
        for await (const event of stream) {
          lastSeq = event.seq;
          note(event.ticketId);
        }
      } catch (e) {
        if (abort.signal.aborted) return;
        if (isCode(e, Code.Unauthenticated)) {
          handlers.signedOut();
          return;
        }
      }
      attempt++;
      handlers.state("reconnecting");
      await new Promise((resolve) => setTimeout(resolve, Math.min(500 * 2 ** attempt, 5000)));
    }
  })();
  return () => abort.abort();
}
