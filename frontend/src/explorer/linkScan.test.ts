import { describe, expect, it } from "vitest";
import { tinyGraphJson } from "./fixture";
import { buildGraph, heldRecords, type Graph } from "./graph";
import { graphFromBytes, splitLinks } from "./linkScan";

const bytesOf = (text: string): Uint8Array => new TextEncoder().encode(text);

/** Everything buildGraph derives from the links, as plain data to compare. */
function edgesOf(graph: Graph): unknown {
  return {
    n: graph.n,
    nEdges: graph.nEdges,
    dropped: graph.dropped,
    partial: graph.partial,
    src: Array.from(graph.edgeSrc),
    dst: Array.from(graph.edgeDst),
    weight: Array.from(graph.edgeWeight, (w) => (Object.is(w, -0) ? "-0" : w)),
    marks: Array.from(graph.edgeAbsBefore),
    total: graph.edgeAbsTotal,
    outStart: Array.from(graph.outStart),
    inEdges: Array.from(graph.inEdges),
    inputAbsSum: Array.from(graph.inputAbsSum),
    outDst: Array.from(graph.outDst),
    inSrc: Array.from(graph.inSrc),
    ids: graph.nodes.map((node) => node.id),
    raw: graph.nodes.map((_, i) => heldRecords(graph.rawNodes)![graph.nodeSource[i]!]),
    metadata: graph.metadata,
  };
}

function expectSameAsJsonParse(text: string): void {
  expect(edgesOf(graphFromBytes(bytesOf(text)))).toEqual(edgesOf(buildGraph(JSON.parse(text))));
}

let seed = 11;
const random = (): number => (seed = (seed * 16807) % 2147483647) / 2147483647;

/** A random graph document; its links' weights written in the many ways JSON allows. */
function randomDocument(nNodes: number, nLinks: number): Record<string, unknown> {
  const nodes = Array.from({ length: nNodes }, (_, k) => ({
    node_id: `${k % 4}_${k}_${k % 3}`,
    feature: k,
    layer: String(k % 4),
    ctx_idx: k % 3,
    feature_type: "cross layer transcoder",
    clerp: `feature ${k}`,
    influence: random(),
  }));
  const weights = () => {
    const r = random();
    if (r < 0.2) return Math.round((random() - 0.5) * 1e5) / 1e5; // 5 decimals, as exports write them
    if (r < 0.4) return (random() - 0.5) * 1e-9; // exponent form, 17 significant digits
    if (r < 0.5) return Math.round(random() * 100) - 50; // integers, 0 among them
    return random() - 0.5;
  };
  const links = Array.from({ length: nLinks }, () => ({
    source: `${Math.floor(random() * nNodes) % 4}_${Math.floor(random() * nNodes)}_0`,
    target: nodes[Math.floor(random() * nNodes)]!.node_id,
    weight: weights(),
  }));
  // Some sources by a real id, so links survive; the rest mostly miss.
  for (const link of links) if (random() < 0.7) link.source = nodes[Math.floor(random() * nNodes)]!.node_id;
  return { metadata: { slug: "r", prompt_tokens: ["a", "b", "c"] }, qParams: {}, nodes, links };
}

describe("graphFromBytes", () => {
  it("reads random graphs exactly as JSON.parse + buildGraph do", () => {
    for (let round = 0; round < 20; round++) {
      const doc = randomDocument(5 + Math.floor(random() * 60), Math.floor(random() * 400));
      const text = JSON.stringify(doc, null, round % 3 === 0 ? 2 : undefined);
      expect(splitLinks(bytesOf(text))).not.toBeNull();
      expectSameAsJsonParse(text);
    }
  });

  it("tells apart ids of one hash and length by their bytes", () => {
    // FNV-1a collisions: pairs of ids that share hash and length, so only their bytes tell them
    // apart; in each pair one is a node and the other only a link end.
    const short = ["0_0522789_0", "0_0739192_0"]; // differ in the middle
    const long = ["0_123456789012_00132789", "0_123456789012_00729192"]; // differ past 16 bytes
    const doc = randomDocument(20, 0) as { nodes: { node_id: string }[]; links: unknown[] };
    doc.nodes[1]!.node_id = short[0]!;
    doc.nodes[2]!.node_id = long[1]!;
    const ids = [...short, ...long, doc.nodes[0]!.node_id, doc.nodes[3]!.node_id];
    for (const source of ids) for (const target of ids) doc.links.push({ source, target, weight: random() - 0.5 });
    const text = JSON.stringify(doc);
    expect(splitLinks(bytesOf(text))).not.toBeNull();
    expectSameAsJsonParse(text);
  });

  it("reads the tiny fixture (old error ids, unknown ids, a string weight) as buildGraph does", () => {
    expectSameAsJsonParse(JSON.stringify(tinyGraphJson()));
  });

  it("reads number spellings JSON allows with the value JSON.parse gives", () => {
    const spellings = ["0", "-0", "1", "-12.5", "1e3", "1E-3", "2.5e+2", "0.000123", "123456789012345678", "0.1000000000000000055511151231257827", "1e400", "-1e-400", "4.9e-324", "17976931348623157e292"];
    const doc = tinyGraphJson();
    const text = JSON.stringify(doc).replace(/"links":\[.*\]/, () => `"links":[${spellings.map((w) => `{"source":"E_10_0","target":"0_5_0","weight":${w}}`).join(",")}]`);
    expect(splitLinks(bytesOf(text))).not.toBeNull();
    expectSameAsJsonParse(text);
  });

  it("keeps JSON.parse's reading of odd but valid links: extra keys, key order, repeats, non-string ids", () => {
    const links = [
      `{"weight": 2, "target": "0_5_0", "source": "E_10_0"}`,
      `{"source": "E_10_0", "target": "0_5_0", "weight": 1, "extra": "x", "flag": true, "none": null, "n": -3}`,
      `{"source": "nope", "target": "0_5_0", "weight": 1, "source": "E_11_1"}`,
      `{"source": 5, "target": "0_5_0", "weight": 1}`,
      `{"source": "E_10_0", "target": "0_5_0", "weight": null}`,
      `{"source": "E_10_0", "target": "0_5_0"}`,
      `{}`,
    ];
    const text = JSON.stringify(tinyGraphJson()).replace(/"links":\[.*\]/, () => `"links" : [ ${links.join(" ,\n ")} ]`);
    expect(splitLinks(bytesOf(text))).not.toBeNull();
    expectSameAsJsonParse(text);
  });

  it("reads links that come before the nodes, and a file that starts with a BOM", () => {
    const { links, ...rest } = tinyGraphJson();
    const text = JSON.stringify({ links, ...rest });
    expectSameAsJsonParse(text);
    const withBom = new Uint8Array([0xef, 0xbb, 0xbf, ...bytesOf(text)]);
    expect(edgesOf(graphFromBytes(withBom))).toEqual(edgesOf(buildGraph(JSON.parse(text))));
  });

  it("leaves what it does not expect to JSON.parse, with the same result", () => {
    const tiny = JSON.stringify(tinyGraphJson());
    const odd = [
      tiny.replace('"source":"E_10_0"', '"source":"E_1\\u0030_0"'), // an escape in an id
      tiny.replace('"weight":3', '"weight":[3]'), // a nested value
      tiny.replace('{"source":"nope"', '7,{"source":"nope"'), // a link that is not an object
      tiny.replace('"links":[', '"links":[],"links":['), // links twice: the last wins
      tiny.replaceAll('"E_11_1"', '"E_ü_1"'), // a non-ASCII id
    ];
    for (const text of odd) {
      expect(splitLinks(bytesOf(text))).toBeNull();
      expectSameAsJsonParse(text);
    }
  });

  it("keeps the node records as text and gives each node its own record back, dropped ones skipped", () => {
    const tiny = tinyGraphJson() as { nodes: Record<string, unknown>[] };
    const bad = { node_id: "", feature_type: "cross layer transcoder" }; // no id: dropped
    const document = { ...tiny, nodes: [bad, ...tiny.nodes, tiny.nodes[0]] }; // and a duplicate
    const graph = graphFromBytes(bytesOf(JSON.stringify(document)));
    expect("text" in graph.rawNodes).toBe(true);
    expect(graph.dropped.nodes).toBe(2);
    expect(graph.nodes.map((_, i) => heldRecords(graph.rawNodes)![graph.nodeSource[i]!])).toEqual(tiny.nodes);
  });

  it("reads a graph without links as a skeleton, as buildGraph does", () => {
    const { links: _links, ...rest } = tinyGraphJson();
    const text = JSON.stringify({ ...rest, links_total: 9 });
    expect(splitLinks(bytesOf(text))).toBeNull();
    expectSameAsJsonParse(text);
  });

  it("rejects bad JSON in the links as JSON.parse does", () => {
    const tiny = JSON.stringify(tinyGraphJson());
    for (const text of [tiny.replace('"weight":3', '"weight":03'), tiny.replace('"weight":3}', '"weight":3,}'), tiny.slice(0, -20)]) {
      expect(() => graphFromBytes(bytesOf(text))).toThrow(SyntaxError);
    }
  });
});
