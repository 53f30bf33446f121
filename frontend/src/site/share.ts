// Share links and embed code for a saved subgraph (pure, tested).

// What a share link keeps of the page's query: the comparison (explorer/compare.ts), which the
// saved subgraph does not hold.
const KEPT = ["compare", "compareView"];

/** The page URL that opens this subgraph; the explorer's own view parameters are dropped. */
export function shareLink(pageUrl: string, shareSlug: string, embed: boolean): string {
  const url = new URL(pageUrl);
  const kept = KEPT.flatMap((key) => url.searchParams.getAll(key).map((value) => [key, value] as const));
  url.search = "";
  url.hash = "";
  url.searchParams.set("subgraph", shareSlug);
  for (const [key, value] of kept) url.searchParams.append(key, value);
  if (embed) url.searchParams.set("embed", "1");
  return url.toString();
}

function attribute(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** An iframe snippet to paste into another page. The title is escaped for an attribute. */
export function embedCode(embedUrl: string, title: string): string {
  return `<iframe src="${attribute(embedUrl)}" title="${attribute(title)}" width="100%" height="600" style="border:1px solid #ddd" loading="lazy"></iframe>`;
}
