// Reading a big graph's `links` straight from the JSON bytes into typed arrays.
//
// JSON.parse of a 2M-link file makes 2M objects and 4M strings, most of the open time and a few
// hundred MB of heap, only for buildGraph to copy three fields out of each. Here the top-level
// `links` array is cut out of the bytes and scanned by a small grammar of its own (an array of
// flat objects whose `source` / `target` are plain strings and `weight` a number); the rest of the
// document (metadata, nodes: a tenth of the bytes) still goes through JSON.parse. Anything the
// scanner does not expect (escapes, nested values, a second `links` key, bad syntax) makes it give
// up, and the caller parses the whole document the ordinary way, so the result is always the one
// JSON.parse would give.

import { buildGraph, type Graph } from "./graph";

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const MINUS = 0x2d;
const PLUS = 0x2b;
const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;

function isSpace(b: number): boolean {
  return b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
}

/** The links of a document, scanned: ids as byte ranges (resolved later against the nodes). */
export interface ScannedLinks {
  count: number; // elements of the array, usable or not
  // Per element: the byte range of source and target (start = -1: absent or not a string), the
  // FNV-1a hash of those bytes, and the weight (NaN: absent or not a finite number).
  srcStart: Int32Array;
  srcEnd: Int32Array;
  srcHash: Int32Array;
  dstStart: Int32Array;
  dstEnd: Int32Array;
  dstHash: Int32Array;
  weight: Float64Array;
}

export interface SplitDocument {
  rest: Uint8Array; // the document's bytes with `links` replaced by []
  links: ScannedLinks;
}

class Irregular extends Error {}

const POW10 = [1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22];

class Scanner {
  pos = 0;
  // Set by readString: the FNV-1a hash of the last string's bytes, and whether it had a byte >= 0x80.
  hash = 0;
  nonAscii = false;

  constructor(readonly bytes: Uint8Array) {}

  space(): void {
    const { bytes } = this;
    while (this.pos < bytes.length && isSpace(bytes[this.pos]!)) this.pos++;
  }

  expect(b: number): void {
    if (this.bytes[this.pos] !== b) throw new Irregular();
    this.pos++;
  }

  /** A string without escapes; returns the index of its closing quote. */
  readString(): number {
    const { bytes } = this;
    this.expect(QUOTE);
    let h = 0x811c9dc5;
    let high = false;
    for (let p = this.pos; p < bytes.length; p++) {
      const b = bytes[p]!;
      if (b === QUOTE) {
        this.pos = p + 1;
        this.hash = h | 0;
        this.nonAscii = high;
        return p;
      }
      if (b === BACKSLASH || b < 0x20) throw new Irregular();
      if (b >= 0x80) high = true;
      h = Math.imul(h ^ b, 0x01000193);
    }
    throw new Irregular();
  }

  /** A JSON number, exactly as JSON.parse reads it. */
  readNumber(): number {
    const { bytes } = this;
    const start = this.pos;
    let p = start;
    let negative = false;
    if (bytes[p] === MINUS) {
      negative = true;
      p++;
    }
    let mantissa = 0;
    let digits = 0; // significant digits in the mantissa
    let scale = 0; // decimal exponent of the mantissa's last digit
    const intStart = p;
    while (p < bytes.length && bytes[p]! >= ZERO && bytes[p]! <= NINE) {
      if (mantissa !== 0 || bytes[p] !== ZERO) digits++;
      mantissa = mantissa * 10 + (bytes[p]! - ZERO);
      p++;
    }
    const intDigits = p - intStart;
    if (intDigits === 0 || (intDigits > 1 && bytes[intStart] === ZERO)) throw new Irregular();
    if (bytes[p] === DOT) {
      p++;
      const fracStart = p;
      while (p < bytes.length && bytes[p]! >= ZERO && bytes[p]! <= NINE) {
        if (mantissa !== 0 || bytes[p] !== ZERO) digits++;
        mantissa = mantissa * 10 + (bytes[p]! - ZERO);
        scale--;
        p++;
      }
      if (p === fracStart) throw new Irregular();
    }
    if (bytes[p] === 0x65 || bytes[p] === 0x45) {
      p++;
      let expNegative = false;
      if (bytes[p] === PLUS || bytes[p] === MINUS) expNegative = bytes[p++] === MINUS;
      const expStart = p;
      let exponent = 0;
      while (p < bytes.length && bytes[p]! >= ZERO && bytes[p]! <= NINE) {
        exponent = Math.min(exponent * 10 + (bytes[p]! - ZERO), 1e6);
        p++;
      }
      if (p === expStart) throw new Irregular();
      scale += expNegative ? -exponent : exponent;
    }
    this.pos = p;
    // Exact when the mantissa is an exact integer and 10^|scale| an exact double: one rounding,
    // as the correctly rounded JSON.parse does. Otherwise let the engine read the text.
    if (digits > 15 || scale < -22 || scale > 22) return Number(String.fromCharCode(...bytes.subarray(start, p)));
    const value = scale < 0 ? mantissa / POW10[-scale]! : mantissa * POW10[scale]!;
    return negative ? -value : value;
  }

  /** A scalar other than a string or number (true, false, null). */
  readLiteral(): void {
    const { bytes } = this;
    for (const word of ["true", "false", "null"]) {
      let ok = true;
      for (let k = 0; k < word.length; k++) if (bytes[this.pos + k] !== word.charCodeAt(k)) ok = false;
      if (ok) {
        this.pos += word.length;
        return;
      }
    }
    throw new Irregular();
  }

  /** Skip a whole JSON value (strings may have escapes here; syntax is JSON.parse's to check). */
  skipValue(): void {
    const { bytes } = this;
    const first = bytes[this.pos];
    if (first !== QUOTE && first !== OPEN_BRACE && first !== OPEN_BRACKET) {
      // A scalar: up to the byte that ends it.
      for (let b = bytes[this.pos]; this.pos < bytes.length; b = bytes[++this.pos]) {
        if (b === COMMA || b === CLOSE_BRACE || b === CLOSE_BRACKET || isSpace(b!)) return;
      }
      throw new Irregular();
    }
    let depth = 0;
    do {
      if (this.pos >= bytes.length) throw new Irregular();
      const b = bytes[this.pos++]!;
      if (b === QUOTE) {
        while (this.pos < bytes.length && bytes[this.pos] !== QUOTE) this.pos += bytes[this.pos] === BACKSLASH ? 2 : 1;
        this.pos++;
      } else if (b === OPEN_BRACE || b === OPEN_BRACKET) depth++;
      else if (b === CLOSE_BRACE || b === CLOSE_BRACKET) depth--;
    } while (depth > 0);
  }
}

function grow(a: Int32Array, size: number): Int32Array<ArrayBuffer> {
  const out = new Int32Array(size);
  out.set(a);
  return out;
}

function scanLinkArray(s: Scanner): ScannedLinks {
  const { bytes } = s;
  let capacity = Math.max(16, Math.ceil(bytes.length / 64));
  let srcStart: Int32Array<ArrayBuffer> = new Int32Array(capacity);
  let srcEnd = new Int32Array(capacity);
  let srcHash = new Int32Array(capacity);
  let dstStart = new Int32Array(capacity);
  let dstEnd = new Int32Array(capacity);
  let dstHash = new Int32Array(capacity);
  let weight = new Float64Array(capacity);
  let count = 0;
  s.expect(OPEN_BRACKET);
  s.space();
  if (bytes[s.pos] === CLOSE_BRACKET) {
    s.pos++;
    return { count, srcStart, srcEnd, srcHash, dstStart, dstEnd, dstHash, weight };
  }
  for (;;) {
    if (count === capacity) {
      capacity *= 2;
      [srcStart, srcEnd, srcHash] = [grow(srcStart, capacity), grow(srcEnd, capacity), grow(srcHash, capacity)];
      [dstStart, dstEnd, dstHash] = [grow(dstStart, capacity), grow(dstEnd, capacity), grow(dstHash, capacity)];
      const w = new Float64Array(capacity);
      w.set(weight);
      weight = w;
    }
    srcStart[count] = -1;
    dstStart[count] = -1;
    weight[count] = NaN;
    s.space();
    s.expect(OPEN_BRACE);
    s.space();
    if (bytes[s.pos] !== CLOSE_BRACE) {
      for (;;) {
        s.space();
        const keyStart = s.pos + 1;
        const keyEnd = s.readString();
        const key = keyEnd - keyStart === 6 ? keyName(bytes, keyStart) : 0;
        s.space();
        s.expect(COLON);
        s.space();
        const b = bytes[s.pos]!;
        // A later duplicate key wins, as in JSON.parse.
        if (b === QUOTE) {
          const start = s.pos + 1;
          const end = s.readString();
          // Non-ASCII ids are left to the slow path, which decodes the bytes as fetch would.
          if (s.nonAscii && key !== 0) throw new Irregular();
          if (key === 1) [srcStart[count], srcEnd[count], srcHash[count]] = [start, end, s.hash];
          else if (key === 2) [dstStart[count], dstEnd[count], dstHash[count]] = [start, end, s.hash];
          else if (key === 3) weight[count] = NaN;
        } else if (b === MINUS || (b >= ZERO && b <= NINE)) {
          const value = s.readNumber();
          if (key === 3) weight[count] = Number.isFinite(value) ? value : NaN;
          else if (key === 1) srcStart[count] = -1;
          else if (key === 2) dstStart[count] = -1;
        } else if (b === 0x74 || b === 0x66 || b === 0x6e) {
          s.readLiteral();
          if (key === 1) srcStart[count] = -1;
          else if (key === 2) dstStart[count] = -1;
          else if (key === 3) weight[count] = NaN;
        } else {
          throw new Irregular(); // a nested value: rare enough for the slow path
        }
        s.space();
        if (bytes[s.pos] === COMMA) {
          s.pos++;
          continue;
        }
        break;
      }
    }
    s.expect(CLOSE_BRACE);
    count++;
    s.space();
    if (bytes[s.pos] === COMMA) {
      s.pos++;
      continue;
    }
    s.expect(CLOSE_BRACKET);
    return { count, srcStart, srcEnd, srcHash, dstStart, dstEnd, dstHash, weight };
  }
}

const KEYS = ["source", "target", "weight"].map((key) => Array.from(key, (c) => c.charCodeAt(0)));

/** 1 source, 2 target, 3 weight, 0 another six-byte key; compared as bytes (no string per key). */
function keyName(bytes: Uint8Array, p: number): number {
  for (let k = 0; k < KEYS.length; k++) {
    const key = KEYS[k]!;
    let c = 0;
    while (c < 6 && bytes[p + c] === key[c]) c++;
    if (c === 6) return k + 1;
  }
  return 0;
}

/**
 * Cut the top-level `links` array out of a JSON document's UTF-8 bytes and scan it; null when
 * the document is not shaped for that (no top-level object, no `links` array, anything
 * irregular): parse it whole then.
 */
export function splitLinks(bytes: Uint8Array): SplitDocument | null {
  const s = new Scanner(bytes);
  try {
    if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) s.pos = 3; // a BOM
    s.space();
    s.expect(OPEN_BRACE);
    let found: { start: number; end: number; links: ScannedLinks } | null = null;
    s.space();
    while (bytes[s.pos] !== CLOSE_BRACE) {
      s.space();
      const keyStart = s.pos + 1;
      const keyEnd = s.readString();
      const isLinks = keyEnd - keyStart === 5 && String.fromCharCode(...bytes.subarray(keyStart, keyEnd)) === "links";
      s.space();
      s.expect(COLON);
      s.space();
      if (isLinks) {
        if (found || bytes[s.pos] !== OPEN_BRACKET) return null;
        const start = s.pos;
        const links = scanLinkArray(s);
        found = { start, end: s.pos, links };
      } else {
        s.skipValue();
      }
      s.space();
      if (bytes[s.pos] === COMMA) s.pos++;
      else if (bytes[s.pos] !== CLOSE_BRACE) return null;
    }
    if (!found) return null;
    const rest = new Uint8Array(found.start + 2 + bytes.length - found.end);
    rest.set(bytes.subarray(0, found.start));
    rest.set([OPEN_BRACKET, CLOSE_BRACKET], found.start);
    rest.set(bytes.subarray(found.end), found.start + 2);
    return { rest, links: found.links };
  } catch (error) {
    if (error instanceof Irregular) return null;
    throw error;
  }
}

/** FNV-1a over a string's char codes; equals Scanner's hash of its bytes for ASCII text. */
export function asciiHash(text: string): number {
  let h = 0x811c9dc5;
  for (let k = 0; k < text.length; k++) h = Math.imul(h ^ text.charCodeAt(k), 0x01000193);
  return h | 0;
}

/**
 * Node index of each scanned link end: an open-addressing table over the ASCII ids of `index`
 * (ids with other characters can't match a link here: such links went the slow path). The table
 * and the ids' bytes are flat typed arrays, so a lookup touches a cache line or two, not strings
 * scattered over the heap (4M lookups for a 2M-link graph).
 */
export function resolveIds(index: Map<string, number>, bytes: Uint8Array, links: ScannedLinks): { src: Int32Array; dst: Int32Array } {
  const ids: string[] = [];
  const values: number[] = [];
  let idBytes = 0;
  for (const [id, i] of index) {
    if (/^[\x20-\x7e]*$/.test(id)) {
      ids.push(id);
      values.push(i);
      idBytes += id.length;
    }
  }
  const text = new Uint8Array(idBytes);
  let size = 16;
  while (size < ids.length * 2) size *= 2;
  const mask = size - 1;
  // Per slot: hash, offset of the id in `text`, its length, node index (length -1: empty slot).
  const table = new Int32Array(size * 4);
  for (let slot = 0; slot < size; slot++) table[slot * 4 + 2] = -1;
  let offset = 0;
  for (let k = 0; k < ids.length; k++) {
    const id = ids[k]!;
    for (let c = 0; c < id.length; c++) text[offset + c] = id.charCodeAt(c);
    const h = asciiHash(id);
    let slot = h & mask;
    while (table[slot * 4 + 2] !== -1) slot = (slot + 1) & mask;
    table.set([h, offset, id.length, values[k]!], slot * 4);
    offset += id.length;
  }
  const lookup = (start: number, end: number, h: number): number => {
    if (start < 0) return -1;
    const length = end - start;
    for (let slot = h & mask; ; slot = (slot + 1) & mask) {
      const t = slot * 4;
      const idLength = table[t + 2]!;
      if (idLength === -1) return -1;
      if (table[t] !== h || idLength !== length) continue;
      const at = table[t + 1]!;
      let c = 0;
      while (c < length && text[at + c] === bytes[start + c]) c++;
      if (c === length) return table[t + 3]!;
    }
  };
  const src = new Int32Array(links.count);
  const dst = new Int32Array(links.count);
  for (let e = 0; e < links.count; e++) {
    src[e] = lookup(links.srcStart[e]!, links.srcEnd[e]!, links.srcHash[e]!);
    dst[e] = lookup(links.dstStart[e]!, links.dstEnd[e]!, links.dstHash[e]!);
  }
  return { src, dst };
}

/**
 * A graph from the bytes of its JSON file: links scanned when they can be, else JSON.parse whole.
 * A scanned graph keeps its node records as the text they came from (see RawNodes).
 */
export function graphFromBytes(bytes: Uint8Array): Graph {
  const split = splitLinks(bytes);
  if (!split) return buildGraph(JSON.parse(new TextDecoder().decode(bytes)));
  const { links, rest } = split;
  const graph = buildGraph(JSON.parse(new TextDecoder().decode(rest)), (index) => ({
    count: links.count,
    ...resolveIds(index, bytes, links),
    weight: links.weight,
  }));
  return { ...graph, rawNodes: { text: rest } };
}
