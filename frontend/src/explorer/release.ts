// When the tab leaves the page for good, the graph's typed arrays (about 75 MB for 2M links) are
// given back at once. Otherwise a tab that opens graph after graph also holds the earlier
// graphs until V8 next collects: measured on the explorer benchmark's three opens, one or two
// earlier graphs were often still there (about 95 MB each), and how many varied from run to run.
// Dropping references, or transferring a buffer to a worker, waits for that collection like the
// rest of the old page; ArrayBuffer.prototype.transfer(0) frees the old buffer's memory at once.
//
// A page kept in the back/forward cache (pagehide with `persisted`) may be shown again: its
// arrays are kept.

type Releasable = ArrayBuffer & { transfer?: (length: number) => ArrayBuffer; detached?: boolean };

/** The buffers of the typed arrays among `root`'s fields, and its plain objects' fields, to
 * `depth` levels (a state, its graph, its view and the view's layout). */
export function typedArrayBuffers(root: object, depth = 3): Set<ArrayBuffer> {
  const found = new Set<ArrayBuffer>();
  const seen = new Set<object>();
  const walk = (value: unknown, level: number): void => {
    if (ArrayBuffer.isView(value)) {
      if (value.buffer instanceof ArrayBuffer) found.add(value.buffer);
      return;
    }
    // Plain objects only: not the node records' array, maps, or DOM and canvas objects.
    if (level > depth || typeof value !== "object" || value === null || seen.has(value)) return;
    if (Object.getPrototypeOf(value) !== Object.prototype) return;
    seen.add(value);
    for (const field of Object.values(value)) walk(field, level + 1);
  };
  walk(root, 0);
  return found;
}

/** Frees each buffer's memory now (it reads as empty after); false where the browser cannot. */
export function releaseBuffers(buffers: Iterable<ArrayBuffer>): boolean {
  let all = true;
  for (const buffer of buffers as Iterable<Releasable>) {
    if (typeof buffer.transfer !== "function") {
      all = false;
      continue;
    }
    if (!buffer.detached) buffer.transfer(0);
  }
  return all;
}

/** On leaving the page for good, frees the buffers `held` names then. */
export function releaseOnLeave(held: () => Iterable<ArrayBuffer>, target: EventTarget = window): void {
  target.addEventListener("pagehide", (event) => {
    if ((event as PageTransitionEvent).persisted) return;
    releaseBuffers(held());
  });
}
