// API types the explorer relies on. `npm run api-types` regenerates ./schema.d.ts from the
// OpenAPI schema (manage.py spectacular --file ../var/openapi.yaml); until the features API
// lands, these hand-written shapes follow issue 5's contract and are checked at runtime by
// ./features.ts, so a server that answers differently degrades the panel, not the page.

export interface FeatureKey {
  model: string;
  set: string;
  layer: number;
  index: number;
}

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

export interface LookupRequest {
  features: FeatureKey[];
  include: ("explanations" | "logits" | "activations" | "histogram")[];
  max_activations: number;
}
