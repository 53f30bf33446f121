"""The parameters of each job kind, with their defaults and bounds, written once.

The web side validates a request against these bounds (jobs/serializers.py, steering's
serializers and the generate page's form read them from here) and stores the job's parameters
as ``params.to_dict()``; the worker reads them back with ``Kind.from_dict(job.params)``, and
the CLI takes its defaults and bounds from here too. So the web and the worker cannot disagree
on a default: a key missing from a row (an older row, a test's hand-made one) gets the same
default the web would have written. The frontend gets the numbers in ``contract.gen.ts``.

Bounds that depend on the deployment (``JOBS_MAX_FEATURE_NODES``, ``STEERING_MAX_NEW_TOKENS``)
are Django settings, checked by the web side on top of these.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self, get_args


@dataclass(frozen=True)
class Spec:
    """A setting's default and inclusive bounds (``high`` None: unbounded above)."""

    default: Any
    low: int | float
    high: int | float | None
    doc: str

    def contains(self, value: float) -> bool:
        return self.low <= value and (self.high is None or value <= self.high)

    def range_text(self) -> str:
        """``1–50`` or ``≥ 1``: the bounds as the generate page and the CLI say them."""
        return f"≥ {self.low:g}" if self.high is None else f"{self.low:g}–{self.high:g}"


def _setting(default: Any, *, low: float, high: float | None = None, doc: str) -> Any:
    return field(default=default, metadata={"spec": Spec(default, low, high, doc)})


class Params:
    """``to_dict`` / ``from_dict`` for the dataclasses below."""

    kind: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        """What ``Job.params`` stores (JSON-ready)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """The parameters of a stored job; missing keys take their defaults, unknown keys (from
        older rows) are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def spec(cls, name: str) -> Spec:
        """The default and bounds of the setting ``name``."""
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name == name and "spec" in f.metadata:
                spec: Spec = f.metadata["spec"]
                return spec
        raise KeyError(f"{cls.__name__} has no bounded setting {name!r}")

    @classmethod
    def specs(cls) -> dict[str, Spec]:
        return {
            f.name: f.metadata["spec"]
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            if "spec" in f.metadata
        }


@dataclass(frozen=True, kw_only=True)
class AttributeParams(Params):
    """One attribution graph: a job of kind ``attribution``, and ``python -m inference attribute``."""

    kind: ClassVar[str] = "attribution"

    prompt: str = ""
    max_n_logits: int = _setting(10, low=1, high=50, doc="At most this many output logits.")
    desired_logit_prob: float = _setting(
        0.95,
        low=0.01,
        high=1.0,
        doc="Keep top logits until their probability sums to this.",
    )
    # None: every active feature (the CLI's default, "all"; a job has the bound below).
    max_feature_nodes: int | None = _setting(
        5000, low=1, doc="Most influential features kept before pruning."
    )
    node_threshold: float = _setting(
        0.8, low=0.0, high=1.0, doc="Keep nodes up to this share of cumulative influence."
    )
    edge_threshold: float = _setting(
        0.98, low=0.0, high=1.0, doc="Keep edges up to this share of cumulative influence."
    )
    # None: the engine's own default (ENGINE_BATCH_SIZE).
    batch_size: int | None = _setting(
        None, low=1, high=1024, doc="Backward passes per batch (memory vs speed)."
    )
    # {"tokens": [id or text, ...]} or {"logit_diff": [a, b]}; None: the top logits.
    target: dict[str, list[int | str]] | None = None
    slug: str = ""  # empty: a free slug made from the prompt
    title: str = ""
    visibility: str = "private"
    featured: bool = False  # set only by the demo loader; the API refuses the field


# attribute()'s batch size when a job or the CLI gives none.
ENGINE_BATCH_SIZE = 256


@dataclass(frozen=True, kw_only=True)
class TokenizeParams(Params):
    """The generate page's tokenize-as-you-type call (a short task, not a job row)."""

    kind: ClassVar[str] = "tokenize"

    top_k: int = _setting(10, low=1, high=50, doc="Most likely next tokens shown.")


# constrained: the graph's own linear model (attention, norms, MLP outputs frozen); free: the
# network recomputes downstream of the interventions.
InterveneMode = Literal["constrained", "free"]
INTERVENE_MODES: tuple[InterveneMode, ...] = get_args(InterveneMode)
# What an intervention does to a feature: zero it, set it to a value, or scale it by a factor.
# The steering API takes these; a saved subgraph keeps its Test panel rows with them.
INTERVENTION_ACTIONS = ("ablate", "set", "scale")


@dataclass(frozen=True, kw_only=True)
class InterveneParams(Params):
    """Next-token logits and feature activations with and without interventions."""

    kind: ClassVar[str] = "intervene"

    prompt: str = ""
    interventions: list[dict[str, Any]] = field(default_factory=list)  # the engine's flat list
    mode: InterveneMode = "constrained"
    freeze_attention: bool = True
    top_k: int = _setting(10, low=1, high=50, doc="Most likely next tokens in the result.")
    logit_tokens: list[int] = field(default_factory=list)


# Token ids always shown in an intervention's result: at most this many.
MAX_LOGIT_TOKENS = 50


@dataclass(frozen=True, kw_only=True)
class SteerParams(Params):
    """The default and the steered continuation of a prompt, sampled with the same seed."""

    kind: ClassVar[str] = "steer"

    prompt: str = ""
    interventions: list[dict[str, Any]] = field(default_factory=list)
    n_tokens: int = _setting(32, low=1, doc="Tokens to generate.")
    temperature: float = _setting(0.5, low=0.0, high=5.0, doc="0 is greedy decoding.")
    # The web side picks a random seed when none is given and stores it, so a run can be redone.
    seed: int = _setting(
        0,
        low=0,
        high=2**53 - 1,
        doc="Drives both continuations' sampling; a random one is chosen and kept if none.",
    )
    apply_to_generated: bool = True
    top_k: int = _setting(5, low=1, high=20, doc="Most likely tokens shown per step.")


# Where a dashboards job's corpus comes from: a file uploaded into the server's file storage
# (``corpus`` is its storage name), or a path under DASHBOARDS_CORPUS_ROOTS (``corpus`` is the path).
CorpusSource = Literal["upload", "path"]
CORPUS_SOURCES: tuple[CorpusSource, ...] = get_args(CorpusSource)


@dataclass(frozen=True, kw_only=True)
class DashboardsParams(Params):
    """Feature dashboards of a transcoder set over a corpus: a job of kind ``dashboards``, and
    ``python -m inference dashboards`` (docs/dashboards.md)."""

    kind: ClassVar[str] = "dashboards"

    corpus: str = ""
    corpus_source: CorpusSource = "path"
    # The upload's name as its owner gave it, and its SHA-256: a rerun of the same file resumes
    # from the engine's checkpoint even though each upload is stored anew.
    corpus_name: str = ""
    corpus_sha256: str = ""
    text_field: str = "text"  # the document field of .jsonl lines
    layers: list[int] = field(default_factory=list)  # empty: every layer
    max_tokens: int = _setting(
        1_000_000,
        low=64,
        high=10_000_000_000,
        doc="Token budget: the model reads at most this many corpus tokens.",
    )
    top_k: int = _setting(20, low=1, high=200, doc="Top activating examples kept per feature.")
    context: int = _setting(
        64,
        low=2,
        high=4096,
        doc="Tokens per context the corpus is cut into (special first token included).",
    )
    window: int = _setting(
        32, low=0, high=512, doc="Tokens shown on each side of an example's strongest token."
    )
    n_intervals: int = _setting(
        10, low=1, high=50, doc="Activation intervals the lower-activation samples come from."
    )
    examples_per_interval: int = _setting(5, low=1, high=50, doc="Samples per interval.")
    batch_size: int = _setting(32, low=1, high=4096, doc="Contexts per forward pass.")
    seed: int = _setting(0, low=0, high=2**31 - 1, doc="Seed of the interval samples.")

    @property
    def examples_per_feature(self) -> int:
        """Every example the engine writes for one feature (top examples and samples)."""
        return self.top_k + self.n_intervals * self.examples_per_interval


JOB_PARAMS: dict[str, type[Params]] = {
    p.kind: p
    for p in (AttributeParams, TokenizeParams, InterveneParams, SteerParams, DashboardsParams)
}
