// One typed store with subscribers instead of globals. State is replaced, never mutated:
// `set` merges a patch shallowly and tells subscribers which fields changed.

export type Listener<S> = (state: S, previous: S) => void;

export class Store<S extends object> {
  private state: S;
  private readonly listeners = new Set<Listener<S>>();

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
    for (const listener of [...this.listeners]) listener(this.state, previous);
  }

  subscribe(listener: Listener<S>): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Call `listener` when any of `keys` changes (by identity). */
  watch(keys: readonly (keyof S)[], listener: Listener<S>): () => void {
    return this.subscribe((state, previous) => {
      if (keys.some((key) => !Object.is(state[key], previous[key]))) listener(state, previous);
    });
  }
}
