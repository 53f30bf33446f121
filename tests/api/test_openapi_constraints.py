"""The OpenAPI schema states the bounds the server enforces on the main write endpoints' request
fields, and a value just past each documented bound is refused, naming the field."""

from __future__ import annotations

import itertools
import re
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.utils.text import slugify

from core.api import SLUG_PATTERN
from features.serializers import LookupRequestSerializer
from graphs.serializers import SubgraphSerializer
from jobs.serializers import GenerateBatchSerializer, GenerateSerializer
from steering.serializers import SteerRequestSerializer


@pytest.fixture(scope="module")
def components() -> dict[str, Any]:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    return yaml.safe_load(yaml.safe_dump(schema))["components"]["schemas"]


def field(components: dict[str, Any], component: str, name: str) -> dict[str, Any]:
    return components[component]["properties"][name]


def test_generate_states_its_slug_target_and_deployment_bounds(components: dict[str, Any]) -> None:
    assert field(components, "GenerateRequest", "slug")["pattern"] == SLUG_PATTERN
    assert field(components, "GenerateRequest", "slug")["maxLength"] == 100
    assert field(components, "GraphUploadRequest", "slug")["pattern"] == SLUG_PATTERN
    nodes = field(components, "GenerateRequest", "max_feature_nodes")
    assert (nodes["minimum"], nodes["maximum"]) == (1, settings.JOBS_MAX_FEATURE_NODES)
    assert field(components, "GenerateRequest", "prompt")["maxLength"] == (
        settings.JOBS_MAX_PROMPT_CHARS
    )
    prompts = field(components, "GenerateBatchRequest", "prompts")
    assert (prompts["minItems"], prompts["maxItems"]) == (1, settings.JOBS_BATCH_MAX_PROMPTS)
    target = field(components, "GenerateRequest", "target")
    assert (target["minProperties"], target["maxProperties"]) == (1, 1)
    assert target["properties"]["tokens"]["maxItems"] == 50
    assert target["properties"]["logit_diff"]["minItems"] == 2
    assert target["properties"]["logit_diff"]["maxItems"] == 2


def test_lookup_steering_subgraphs_and_tokens_state_their_bounds(
    components: dict[str, Any],
) -> None:
    keys = field(components, "LookupRequestRequest", "features")
    assert (keys["minItems"], keys["maxItems"]) == (1, settings.FEATURE_LOOKUP_MAX_KEYS)
    assert field(components, "SteerRequestRequest", "n_tokens")["maximum"] == (
        settings.STEERING_MAX_NEW_TOKENS
    )
    assert field(components, "SteerRequestRequest", "interventions")["maxItems"] == (
        settings.STEERING_MAX_INTERVENTIONS
    )
    widest = max(settings.STEERING_MAX_SCALE, settings.STEERING_MAX_SET_VALUE)
    value = field(components, "InterventionRequest", "value")
    assert (value["minimum"], value["maximum"]) == (-widest, widest)
    assert field(components, "SubgraphRequest", "pinned_ids")["maxItems"] == 5000
    assert field(components, "SubgraphRequest", "pinned_ids")["items"]["maxLength"] == 100
    assert field(components, "SubgraphRequest", "supernodes")["maxItems"] == 1000
    labels = field(components, "SubgraphRequest", "node_labels")
    assert labels["additionalProperties"]["maxLength"] == 200
    assert field(components, "SubgraphRequest", "thresholds")["maxProperties"] == 10
    assert field(components, "ApiTokenRequest", "name")["maxLength"] == 100


def _errors(serializer_class: Any, data: dict[str, Any]) -> dict[str, Any]:
    form = serializer_class(
        data=data, context={"request": SimpleNamespace(user=AnonymousUser())}, partial=True
    )
    assert not form.is_valid()
    return dict(form.errors)


@pytest.mark.parametrize(
    ("serializer_class", "name", "value"),
    [
        (GenerateSerializer, "slug", "Not-A-Slug"),
        (GenerateSerializer, "slug", "x" * 101),
        (GenerateSerializer, "max_feature_nodes", settings.JOBS_MAX_FEATURE_NODES + 1),
        (GenerateSerializer, "prompt", "w" * (settings.JOBS_MAX_PROMPT_CHARS + 1)),
        (GenerateBatchSerializer, "prompts", ["w"] * (settings.JOBS_BATCH_MAX_PROMPTS + 1)),
        (SteerRequestSerializer, "n_tokens", settings.STEERING_MAX_NEW_TOKENS + 1),
        (
            SteerRequestSerializer,
            "interventions",
            [{"layer": 0, "feature": 0, "action": "ablate"}]
            * (settings.STEERING_MAX_INTERVENTIONS + 1),
        ),
        (SubgraphSerializer, "pinned_ids", ["x"] * 5001),
        (SubgraphSerializer, "thresholds", {f"t{i}": 0.5 for i in range(11)}),
        (LookupRequestSerializer, "features", []),
    ],
)
def test_a_value_past_the_documented_bound_is_refused_naming_the_field(
    serializer_class: Any, name: str, value: Any
) -> None:
    assert name in _errors(serializer_class, {name: value})


def test_the_slug_pattern_accepts_exactly_what_slugify_leaves_unchanged() -> None:
    pattern = re.compile(SLUG_PATTERN)
    for n in range(1, 6):
        for letters in itertools.product("a1-_A .", repeat=n):
            text = "".join(letters)
            assert bool(pattern.match(text)) == (slugify(text) == text), text
