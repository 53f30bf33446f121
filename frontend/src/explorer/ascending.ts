// Stable orderings of node indices by numeric keys, as LSD radix sorts over typed arrays. On a
// 100k-node graph a comparator sort of the nodes (Int32Array.prototype.sort with a closure) took
// 50 ms per ordering while the page opened; these take a few.

// Where a float64's high 32 bits lie in a Uint32Array view of it: the platform's byte order.
const HIGH = new Uint32Array(new Float64Array([-0]).buffer)[1] === 0x80000000 ? 1 : 0;
const LOW = 1 - HIGH;

/**
 * `items` ordered by `keys[item]` ascending, ties in the order `items` has them: what a stable
 * comparator sort by `keys[a] - keys[b]` gives (so -0 and 0 tie). Keys must not be NaN.
 */
export function ascendingBy(keys: Float64Array, items: Int32Array): Int32Array {
  const m = items.length;
  // Each key's IEEE bits, mapped so that unsigned order is numeric order: flip the sign bit of a
  // positive number, every bit of a negative one.
  const bits = new Float64Array(m);
  const words = new Uint32Array(bits.buffer); // per key: its low and high 32 bits, in HIGH's order
  for (let j = 0; j < m; j++) {
    const k = keys[items[j]!]!;
    bits[j] = k === 0 ? 0 : k;
  }
  for (let j = 0; j < m; j++) {
    const high = words[2 * j + HIGH]!;
    if (high >>> 31) {
      words[2 * j + LOW] = ~words[2 * j + LOW]! >>> 0;
      words[2 * j + HIGH] = ~high >>> 0;
    } else {
      words[2 * j + HIGH] = (high | 0x80000000) >>> 0;
    }
  }
  // Positions into items/words, sorted by 16 bits at a time from the lowest.
  let order = new Int32Array(m);
  let next = new Int32Array(m);
  for (let j = 0; j < m; j++) order[j] = j;
  const counts = new Int32Array(65537);
  for (const [word, shift] of [[LOW, 0], [LOW, 16], [HIGH, 0], [HIGH, 16]] as const) {
    counts.fill(0);
    for (let j = 0; j < m; j++) counts[((words[2 * j + word]! >>> shift) & 0xffff) + 1]!++;
    for (let b = 0; b < 65536; b++) counts[b + 1]! += counts[b]!;
    for (let p = 0; p < m; p++) {
      const j = order[p]!;
      next[counts[(words[2 * j + word]! >>> shift) & 0xffff]!++] = j;
    }
    [order, next] = [next, order];
  }
  const out = new Int32Array(m);
  for (let p = 0; p < m; p++) out[p] = items[order[p]!]!;
  return out;
}

/** `items` ordered by `bucket[item]` (integers in [0, buckets)), ties in the order `items` has them. */
export function groupedBy(bucket: Int32Array, buckets: number, items: Int32Array): Int32Array {
  const start = new Int32Array(buckets + 1);
  for (let j = 0; j < items.length; j++) start[bucket[items[j]!]! + 1]!++;
  for (let b = 0; b < buckets; b++) start[b + 1]! += start[b]!;
  const out = new Int32Array(items.length);
  for (let j = 0; j < items.length; j++) {
    const i = items[j]!;
    out[start[bucket[i]!]!++] = i;
  }
  return out;
}
