// API types the explorer relies on, taken from the generated OpenAPI types (./schema.d.ts), so a
// server change breaks `npm run typecheck`, not the page. Regenerate after an API change:
//   npm run api-schema   (the Python side: manage.py spectacular --file src/api/openapi.yaml)
//   npm run api-types    (openapi-typescript src/api/openapi.yaml -o src/api/schema.d.ts)

import type { components, paths } from "./schema";

type Schemas = components["schemas"];

export type FeatureKey = Schemas["FeatureKeyRequest"];
export type LookupRequest = Schemas["LookupRequestRequest"];
export type LookupResponse = Schemas["LookupResponse"];
export type ServerFeature = Schemas["Feature"];
export type ServerExample = Schemas["Example"];
export type ServerExplanation = Schemas["Explanation"];
export type Include = Schemas["IncludeEnum"];
export type ServerSubgraph = Schemas["Subgraph"];
export type ServerGraph = Schemas["Graph"];
export type TokenizeResponse = Schemas["TokenizeResponse"];
export type SuggestionRequest = Schemas["SuggestionRequestRequest"];
export type SuggestionResponse = Schemas["SuggestionResponse"];
/**
 * A Subgraph as the server sends it. DRF writes every field; the schema marks those with a model
 * default optional only because drf-spectacular derives the read component from the serializer
 * that also accepts writes (where they may be left out).
 */
export type SavedSubgraph = ServerSubgraph & Required<Pick<ServerSubgraph, "notes" | "visibility">>;
/** The annotation fields of a Subgraph, as the explorer writes them. */
export type SubgraphFields = Required<Pick<Schemas["SubgraphRequest"], "pinned_ids" | "supernodes" | "node_labels" | "thresholds" | "clicked_id" | "test_rows">> & {
  pinned_ids: string[];
  test_rows: { ids: string[]; action: Schemas["ActionEnum"]; value: number; all_positions: boolean }[];
  supernodes: string[][];
  node_labels: Record<string, string>;
  thresholds: { node: number; edge: number; density: number };
};

/** The endpoints the page calls; a renamed path fails the typecheck. */
export const LOOKUP_PATH = "/api/v1/features/lookup" satisfies keyof paths;
export const ARTIFACT_PATH = "/api/v1/graphs/{model}/{slug}/artifact" satisfies keyof paths;
export const NEIGHBOURHOOD_PATH = "/api/v1/graphs/{model}/{slug}/neighbourhood" satisfies keyof paths;
export const SUBGRAPH_PATH = "/api/v1/subgraphs/{share_slug}" satisfies keyof paths;
export const SUPERNODE_SUGGESTIONS_PATH = "/api/v1/graphs/{model}/{slug}/supernode-suggestions" satisfies keyof paths;

// What the feature panel shows, normalised from ServerFeature by ./features.ts (which checks
// every field at runtime too: a server that answers differently degrades the panel only).
export interface Explanation {
  text: string;
  method?: string;
  author?: string;
  score?: number | null;
}

export interface ActivationExample {
  tokens: string[];
  values: number[];
  max_value?: number;
  quantile?: string;
}

export interface FeatureDetail {
  layer: number;
  index: number;
  density: number | null;
  max_activation: number | null;
  explanations: Explanation[];
  top_logits: [string, number][];
  bottom_logits: [string, number][];
  histogram: { edges: number[]; counts: number[] } | null;
  activations: ActivationExample[];
}
