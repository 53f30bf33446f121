"""Job parameters (contract.params): what the web writes the worker reads back, defaults within
bounds, and the API, the generate page and the CLI all using the contract's numbers."""

from __future__ import annotations

import dataclasses

import pytest
from django.conf import settings

from contract.explain_params import ExplainParams
from contract.params import (
    ENGINE_BATCH_SIZE,
    JOB_PARAMS,
    AttributeParams,
    InterveneParams,
    Params,
    SteerParams,
    TokenizeParams,
)
from inference.cli import build_parser
from jobs.pages import GenerateForm
from jobs.serializers import GenerationSettingsSerializer, TokenizeSerializer
from steering.serializers import InterveneRequestSerializer, SteerRequestSerializer


def test_a_job_row_reads_back_as_it_was_written() -> None:
    written = AttributeParams(prompt="The cat", max_n_logits=3, target={"tokens": [" sat"]})
    assert AttributeParams.from_dict(written.to_dict()) == written
    steer = SteerParams(prompt="p", interventions=[{"layer": 1, "action": "ablate"}], seed=7)
    assert SteerParams.from_dict(steer.to_dict()) == steer


def test_a_row_without_a_setting_gets_the_default_the_web_writes() -> None:
    read = AttributeParams.from_dict({"prompt": "w5"})
    assert read == AttributeParams(prompt="w5")
    assert (read.node_threshold, read.edge_threshold, read.max_feature_nodes) == (0.8, 0.98, 5000)


def test_keys_the_contract_does_not_know_are_ignored() -> None:
    assert InterveneParams.from_dict({"prompt": "p", "retired_setting": 1}).prompt == "p"
    assert ExplainParams.from_dict({"layer": 2, "retired_setting": 1}) == ExplainParams(layer=2)


@pytest.mark.parametrize("params", JOB_PARAMS.values(), ids=JOB_PARAMS.keys())
def test_every_default_is_within_its_bounds(params: type[Params]) -> None:
    assert params.specs()
    for name, spec in params.specs().items():
        assert spec.default is None or spec.contains(spec.default), name
        assert spec.high is None or spec.low <= spec.high, name


@pytest.mark.parametrize(
    ("serializer", "params"),
    [
        (GenerationSettingsSerializer, AttributeParams),
        (TokenizeSerializer, TokenizeParams),
        (InterveneRequestSerializer, InterveneParams),
        (SteerRequestSerializer, SteerParams),
    ],
)
def test_the_api_fields_carry_the_contract_bounds(serializer: type, params: type[Params]) -> None:
    # Where the contract sets no upper bound, the deployment's limit is the field's (and the
    # schema's) maximum.
    deployment = {
        "max_feature_nodes": settings.JOBS_MAX_FEATURE_NODES,
        "n_tokens": settings.STEERING_MAX_NEW_TOKENS,
    }
    fields = serializer().fields
    for name, spec in params.specs().items():
        field = fields[name]
        high = spec.high if spec.high is not None else deployment.get(name)
        assert (field.min_value, field.max_value) == (spec.low, high), name
        if spec.default is not None and name != "seed":
            assert field.default == spec.default, name


def test_the_api_writes_every_field_the_worker_reads() -> None:
    names = {f.name for f in dataclasses.fields(SteerParams)}
    assert set(SteerRequestSerializer.setting_names) | {"prompt", "interventions"} == names
    names = {f.name for f in dataclasses.fields(InterveneParams)}
    assert set(InterveneRequestSerializer.setting_names) | {"prompt", "interventions"} == names


def test_the_generate_page_says_the_contract_defaults() -> None:
    for name, spec in AttributeParams.specs().items():
        field = GenerateForm.base_fields[name]
        assert field.initial == spec.default, name
        assert spec.range_text() in str(field.help_text), name


def test_the_cli_defaults_and_bounds_are_the_contract_s() -> None:
    parser = build_parser()
    base = ["attribute", "--model", "m", "--transcoders", "t", "--prompt", "p", "--out", "o"]
    args = parser.parse_args(base)
    assert args.max_n_logits == AttributeParams.max_n_logits
    assert args.desired_logit_prob == AttributeParams.desired_logit_prob
    assert (args.node_threshold, args.edge_threshold) == (0.8, 0.98)
    assert args.batch_size == ENGINE_BATCH_SIZE
    assert args.max_feature_nodes is None  # the CLI's "all"
    for option, value in [
        ("--max-n-logits", "51"),
        ("--node-threshold", "1.5"),
        ("--batch-size", "0"),
    ]:
        with pytest.raises(SystemExit):
            parser.parse_args([*base, option, value])
