"""The pack's card: loss-curve PNG, sample prompts with their recorded completions, card.md."""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import matplotlib

matplotlib.use("Agg")  # no display on build machines
import matplotlib.pyplot as plt
import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from inference.demo_pack.train_transcoders import TranscoderStats

# One prompt per corpus family: the graphs `make demo` generates first. `expected` is the
# templated answer; `completion` (recorded at build time) is what the model actually says.
SAMPLE_PROMPTS: tuple[tuple[str, str, str], ...] = (
    ("facts", "The capital of France is", " Paris"),
    ("two_hop", "The capital of the state containing Dallas is", " Austin"),
    ("ioi", "When Mary and John went to the store, John gave a book to", " Mary"),
    ("opposites", 'The opposite of "hot" is "', "cold"),
    ("opposites_fr", 'Le contraire de "chaud" est "', "froid"),
    ("addition", "23 + 14 =", " 37"),
    ("filler", "This is Olivia, and", " Olivia"),
)
COMPLETION_TOKENS = 4


@torch.no_grad()
def greedy_completion(
    model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, prompt: str
) -> str:
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    # Some transformers releases type generate()'s self as a protocol LlamaForCausalLM does not
    # spell out, others do not: Any keeps mypy quiet on both.
    out = cast(Any, model).generate(ids, max_new_tokens=COMPLETION_TOKENS, do_sample=False)
    return cast(str, tokenizer.decode(out[0, ids.shape[1] :]))


def sample_prompts(
    model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast
) -> list[dict[str, str]]:
    return [
        {
            "family": family,
            "prompt": prompt,
            "expected": expected,
            "completion": greedy_completion(model, tokenizer, prompt),
        }
        for family, prompt, expected in SAMPLE_PROMPTS
    ]


def save_loss_curve(losses: list[float], path: Path) -> None:
    steps = range(1, len(losses) + 1)
    window = 25
    smoothed = [
        sum(losses[max(0, i - window + 1) : i + 1]) / len(losses[max(0, i - window + 1) : i + 1])
        for i in range(len(losses))
    ]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(steps, losses, color="#bbbbbb", linewidth=0.6, label="per step")
    ax.plot(steps, smoothed, color="#1f5fa8", linewidth=1.5, label=f"mean of {window}")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (nats/token)")
    ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    # No Software/date metadata, so a rerun with the same losses writes the same bytes.
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


@dataclass
class CardFigures:
    command: str
    # Whether this run loaded the model of an earlier run (--reuse-model) instead of training it.
    reused_model: bool
    accuracy: dict[str, float]
    eval_sizes: dict[str, int]
    transcoder_stats: list[TranscoderStats]
    samples: list[dict[str, str]]
    settings: dict[str, Any]
    n_params: int
    vocab_size: int
    final_loss: float
    # Stage name -> seconds, in order.
    timings: dict[str, float] = field(default_factory=dict)
    # Package -> version of what built the pack: the bytes are reproducible with these.
    software: dict[str, str] = field(default_factory=dict)


def software_versions() -> dict[str, str]:
    """The versions the pack's bytes depend on (another release may round differently)."""
    import platform

    import numpy
    import tokenizers
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "numpy": numpy.__version__,
    }


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def write_card(path: Path, figures: CardFigures) -> None:
    accuracy = _table(
        ["evaluation set", "items", "greedy accuracy"],
        [
            [name, str(figures.eval_sizes[name]), f"{value:.1%}"]
            for name, value in figures.accuracy.items()
        ],
    )
    transcoders = _table(
        ["layer", "FVU", "mean L0", "dead fraction"],
        [
            [str(i), f"{s.fvu:.3f}", f"{s.mean_l0:.1f}", f"{s.dead_fraction:.1%}"]
            for i, s in enumerate(figures.transcoder_stats)
        ],
    )
    samples = _table(
        ["family", "prompt", "expected", "greedy completion"],
        [
            [s["family"], f"`{s['prompt']}`", f"`{s['expected']}`", f"`{s['completion']}`"]
            for s in figures.samples
        ],
    )
    timings = _table(
        ["stage", "wall time"], [[k, f"{v / 60:.1f} min"] for k, v in figures.timings.items()]
    )
    total = sum(figures.timings.values())
    settings = json.dumps(figures.settings, indent=2)
    software = _table(["package", "version"], [[k, v] for k, v in figures.software.items()])
    path.write_text(
        CARD_TEMPLATE.format(
            command=figures.command,
            reuse_note=REUSE_NOTE if figures.reused_model else "",
            n_params=f"{figures.n_params:,}",
            vocab_size=figures.vocab_size,
            final_loss=f"{figures.final_loss:.3f}",
            accuracy=accuracy,
            transcoders=transcoders,
            samples=samples,
            timings=timings,
            total=f"{total / 60:.1f}",
            settings=settings,
            software=software,
        )
    )


REUSE_NOTE = """
This copy was built in two invocations: the same command without `--reuse-model` trained the
tokenizer and model (their timings below are from that run), then `--reuse-model` redid the
transcoder, dashboard and card stages on that model. Every stage is seeded and deterministic, so
one plain `python -m inference.demo_pack` gives the same files (card timings aside).
"""

CARD_TEMPLATE = """# Circuit Atlas demo pack

A small Llama-architecture language model trained from scratch on a generated corpus, one
transcoder per layer, and a dashboard for every transcoder feature. Everything here was made on
a CPU by one command, from a seed:

```
{command}
```

Total wall time: {total} minutes (one torch thread; see the timings below). A rerun with the
software versions listed at the end gives the same bytes (card timings aside); another torch or
transformers release may round one operation differently, and training then drifts to other
weights of the same quality.
{reuse_note}
## Corpus

Templated sentences (`inference/demo_pack/corpus.py`, tables in `word_lists.py`), one family per
famous circuit: facts about 49 countries (capital, continent, language), US city -> state ->
capital two-hop questions, indirect-object sentences, English and French opposites, additions of
numbers below 50, and filler prose. Held out of training: 10 names from every indirect-object
sentence, 21 cities from every two-hop sentence (they still appear in `{{city}} is in {{state}}.`),
and 10% of the unordered addition pairs. Each training row is BOS followed by whole sentences,
64 tokens.

## Model

`model/` is a standard Hugging Face folder (`LlamaForCausalLM`, safetensors, byte-level BPE
tokenizer of {vocab_size} tokens whose encoding starts with `<|bos|>`), {n_params} parameters.
Final training loss: {final_loss} nats/token.

![training loss](loss_curve.png)

Greedy accuracy on templated completions (the whole answer must come out; `_held_out` sets use
only names, cities or pairs their family's training sentences never contain):

{accuracy}

Sample prompts (`prompts.json`, one per family; the completions are recorded at build time and the
tests check the model still produces them):

{samples}

## Transcoders

`transcoders/config.yaml` is a `transcoder_set`: `layer_{{i}}.safetensors` reads `hook_resid_mid`
(the residual stream after attention, before the MLP's RMSNorm) and reconstructs `mlp.hook_out`
(the MLP output added to the residual). Tensors: `W_enc` (F, d_model), `W_dec` (F, d_model),
`b_enc` (F,), `b_dec` (d_model,), float32. Activation `topk` with the `k` in config.yaml: each
token keeps its k largest pre-activations `x @ W_enc.T + b_enc` as they are (circuit-tracer's
TopK rule) and the rest are 0. TopK rather than a threshold because the residual stream's norm
varies a lot between tokens, and a threshold gave the large tokens most features and most
tokens none (see `train_transcoders.py`).

Measured on held-out text (the dashboards split), BOS positions excluded; FVU is the fraction
of variance of the MLP output left unexplained by the reconstruction, L0 the number of
positive activations per token, dead the fraction of features that never fire on that text:

{transcoders}

## Feature dashboards

`features/layer_{{i}}.jsonl.gz`: gzip JSON lines, line n is feature n of layer i, every feature
(dead ones with no examples and frequency 0), written by the engine's `compute_dashboards` (the
code behind `python -m inference dashboards`; see docs/dashboards.md for every field) on held-out
corpus text that was not used to train the model or the transcoders, in circuit-tracer's feature
shape: `index`, `transcoder_id`, `examples_quantiles` (`Top activations`, at most one per row and
per distinct window, then `Subsample Interval 0..`, random active tokens from activation bands,
none repeating a top example;
each example `tokens`, `tokens_acts_list`, `train_token_ind`, `is_repeated_datapoint`, and where it
is in the corpus), `top_logits` / `bottom_logits` with their values (decoder direction through the
final norm gain and the unembedding), `act_min` / `act_max` / `act_mean` (over active tokens),
`quantile_intervals` and `quantile_values` (the bands and their lower edges), `histogram`
(`edges` from 0 and `counts` of active tokens), `activation_frequency` (fraction of non-BOS
tokens where it is active).

When the dashboard code changes, only these files need rewriting: `python -m inference.demo_pack
--dashboards-only` recomputes them from the committed model and transcoders on the same held-out
rows with the same settings (minutes on one CPU core), and leaves every other file as it is.

## Timings

{timings}

## Settings

```json
{settings}
```

## Software

{software}
"""
