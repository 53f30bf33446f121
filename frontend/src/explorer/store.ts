// One typed store with subscribers instead of globals. State is replaced, never mutated:
// `set` merges a patch shallowly and tells subscribers which fields changed.
//
// A subscriber may call `set` itself (derived state, like the visible view). Such a nested change
// is applied at once but announced after the current round, and every subscriber is always given
// the latest state together with the last state it saw, so none acts on a stale one.

export type Listener<S> = (state: S, previous: S) => void;

interface Entry<S> {
  listener: Listener<S>;
  seen: S;
}

export class Store<S extends object> {
  private state: S;
  private readonly entries = new Set<Entry<S>>();
  private notifying = false;
  private again = false;

  constructor(initial: S) {
    this.state = initial;
  }

  get(): S {
    return this.state;
  }

  set(patch: Partial<S>): void {
    const previous = this.state;
    let changed = false;
    for (const key of Object.keys(patch) as (keyof S)[]) {
      if (!Object.is(previous[key], patch[key])) {
        changed = true;
        break;
      }
    }
    if (!changed) return;
    this.state = { ...previous, ...patch };
    if (this.notifying) {
      this.again = true;
      return;
    }
    this.notifying = true;
    try {
      do {
        this.again = false;
        for (const entry of [...this.entries]) {
          if (!this.entries.has(entry) || entry.seen === this.state) continue;
          const seen = entry.seen;
          entry.seen = this.state;
          entry.listener(this.state, seen);
        }
      } while (this.again);
    } finally {
      this.notifying = false;
    }
  }

  subscribe(listener: Listener<S>): () => void {
    const entry = { listener, seen: this.state };
    this.entries.add(entry);
    return () => this.entries.delete(entry);
  }

  /** Call `listener` when any of `keys` changes (by identity). */
  watch(keys: readonly (keyof S)[], listener: Listener<S>): () => void {
    return this.subscribe((state, previous) => {
      if (keys.some((key) => !Object.is(state[key], previous[key]))) listener(state, previous);
    });
  }
}
