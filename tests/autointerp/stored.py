"""Synthetic features stored as dashboard rows, for tests of the product side."""

from __future__ import annotations

from autointerp.examples import FeatureExamples
from features.models import ActivationExample, Feature, TranscoderSet


def add_feature(ts: TranscoderSet, layer: int, index: int, examples: FeatureExamples) -> Feature:
    """A feature whose dashboard holds ``examples`` (its silent ones go to index + 500, a
    dashboard of their own, where the explainer finds them as other features' windows)."""
    f = Feature.objects.create(transcoder_set=ts, layer=layer, index=index)
    silent = Feature.objects.create(transcoder_set=ts, layer=layer, index=index + 500)
    rows = [(f, "Top activations", e) for e in examples.top]
    rows += [(f, "Subsample Interval 0", e) for e in examples.quantiles]
    rows += [(silent, "Top activations", e) for e in examples.non_activating]
    ActivationExample.objects.bulk_create(
        ActivationExample(
            feature=owner,
            rank=rank,
            quantile=quantile,
            tokens=list(e.tokens),
            values=[1.0] * len(e.values) if owner is silent else list(e.values),
            max_value=max(e.values),
            max_index=0,
        )
        for rank, (owner, quantile, e) in enumerate(rows)
    )
    return f
