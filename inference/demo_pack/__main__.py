"""Build the demo pack: `python -m inference.demo_pack [--out inference/packs/demo] [--seed 0]`.

Stages: corpus + tokenizer, model, transcoders, dashboards, card. Progress bars live here only;
the library modules report through callbacks.
"""

import argparse
import dataclasses
import itertools
import json
import shlex
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from inference.demo_pack import card, corpus, dashboards, evaluate, train_model, train_transcoders
from inference.demo_pack.activations import mlp_io
from inference.demo_pack.tokenizer import train_tokenizer


@dataclasses.dataclass(frozen=True)
class PackConfig:
    seed: int = 0
    # Vocabulary budget; BPE stops earlier once every corpus word is one token.
    vocab_size: int = 2048
    # Documents (6 joined sentences each) the tokenizer is trained on.
    tokenizer_documents: int = 20_000
    # Rows of held-out text for transcoder training activations and for dashboards + metrics.
    transcoder_rows: int = 4096
    dashboard_rows: int = 1024
    model: train_model.ModelConfig = dataclasses.field(default_factory=train_model.ModelConfig)
    training: train_model.TrainConfig = dataclasses.field(default_factory=train_model.TrainConfig)
    transcoder: train_transcoders.TranscoderConfig = dataclasses.field(
        default_factory=train_transcoders.TranscoderConfig
    )
    dashboard: dashboards.DashboardConfig = dataclasses.field(
        default_factory=dashboards.DashboardConfig
    )


def _parse() -> tuple[Path, PackConfig, bool, bool]:
    parser = argparse.ArgumentParser(prog="python -m inference.demo_pack", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("inference/packs/demo"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, help="model training steps")
    parser.add_argument("--transcoder-steps", type=int)
    parser.add_argument("--features", type=int, help="features per transcoder")
    parser.add_argument("--transcoder-rows", type=int)
    parser.add_argument("--dashboard-rows", type=int)
    parser.add_argument("--tiny", action="store_true", help="seconds-long settings for development")
    parser.add_argument(
        "--reuse-model",
        action="store_true",
        help="load the tokenizer, model and loss log an earlier run with the same settings wrote "
        "to --out, and redo only the transcoder, dashboard and card stages",
    )
    parser.add_argument(
        "--dashboards-only",
        action="store_true",
        help="rewrite only features/ from the model and transcoders already in --out (same "
        "settings as the run that wrote them), leaving every other file as it is",
    )
    args = parser.parse_args()
    config = PackConfig(seed=args.seed)
    if args.tiny:
        config = dataclasses.replace(
            config,
            tokenizer_documents=2000,
            transcoder_rows=256,
            dashboard_rows=64,
            training=dataclasses.replace(config.training, steps=20, warmup_steps=5),
            transcoder=dataclasses.replace(config.transcoder, steps=20, n_features=256),
        )
    if args.steps is not None:
        config = dataclasses.replace(
            config, training=dataclasses.replace(config.training, steps=args.steps)
        )
    if args.transcoder_steps is not None:
        config = dataclasses.replace(
            config, transcoder=dataclasses.replace(config.transcoder, steps=args.transcoder_steps)
        )
    if args.features is not None:
        config = dataclasses.replace(
            config, transcoder=dataclasses.replace(config.transcoder, n_features=args.features)
        )
    if args.transcoder_rows is not None:
        config = dataclasses.replace(config, transcoder_rows=args.transcoder_rows)
    if args.dashboard_rows is not None:
        config = dataclasses.replace(config, dashboard_rows=args.dashboard_rows)
    return args.out, config, args.reuse_model, args.dashboards_only


def _train_language_model(
    config: PackConfig, corpus_config: corpus.CorpusConfig, timings: dict[str, float]
) -> tuple[PreTrainedTokenizerFast, LlamaForCausalLM, list[float]]:
    clock = time.monotonic()
    stream = corpus.sentences(corpus_config, "train")
    documents = [
        " ".join(s.text for s in itertools.islice(stream, 6))
        for _ in range(config.tokenizer_documents)
    ]
    tokenizer = train_tokenizer(documents, vocab_size=config.vocab_size)
    n_rows = config.training.steps * config.training.batch_size
    rows = train_model.token_rows(
        corpus.sentences(corpus_config, "train"),
        tokenizer,
        n_rows=n_rows,
        context=config.model.context,
    )
    timings["corpus and tokenizer"] = time.monotonic() - clock
    clock = time.monotonic()
    model = train_model.build_model(config.model, tokenizer)
    with tqdm(total=config.training.steps, desc="model", unit="step") as bar:

        def on_step(_step: int, loss: float) -> None:
            bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
            bar.update()

        losses = train_model.train_model(model, rows, config.training, on_step=on_step)
    timings["model"] = time.monotonic() - clock
    return tokenizer, model, losses


def _dashboards(
    out: Path,
    config: PackConfig,
    rows: torch.Tensor,
    model: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
) -> None:
    with tqdm(total=100, desc="dashboards", unit="%") as bar:

        def on_dashboard_progress(phase: str, fraction: float) -> None:
            bar.set_description(f"dashboards: {phase}")
            bar.n = round(fraction * 100)
            bar.refresh()

        dashboards.write_dashboards(
            out / "features",
            out / "transcoders",
            rows,
            model,
            tokenizer,
            config.dashboard,
            seed=config.seed,
            on_progress=on_dashboard_progress,
        )


def _write_dashboards_only(
    out: Path, config: PackConfig, corpus_config: corpus.CorpusConfig
) -> None:
    """The dashboards stage alone, on the saved model and transcoders: the same held-out rows
    and settings as a full run, so its files are the ones a full run would write."""
    tokenizer = PreTrainedTokenizerFast.from_pretrained(out / "model")
    model = LlamaForCausalLM.from_pretrained(out / "model")
    model.eval()
    rows = train_model.token_rows(
        corpus.sentences(corpus_config, "dashboards"),
        tokenizer,
        n_rows=config.dashboard_rows,
        context=config.model.context,
    )
    _dashboards(out, config, rows, model, tokenizer)


def main() -> None:
    out, config, reuse_model, dashboards_only = _parse()
    # One thread: results are reproducible run to run, and on a shared machine a second
    # OpenMP thread spends its time waiting at barriers (measured 8x slower under load).
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(config.seed)
    timings: dict[str, float] = {}
    corpus_config = corpus.CorpusConfig(seed=config.seed)
    if dashboards_only:
        _write_dashboards_only(out, config, corpus_config)
        return
    if reuse_model:
        # The stages are deterministic, so reusing them gives the files a full run would.
        tokenizer = PreTrainedTokenizerFast.from_pretrained(out / "model")
        model = LlamaForCausalLM.from_pretrained(out / "model")
        model.eval()
        log = json.loads((out / "training_log.json").read_text())
        losses = log["losses"]
        for stage in ("corpus and tokenizer", "model"):
            timings[stage] = log["timings"][stage]
    else:
        tokenizer, model, losses = _train_language_model(config, corpus_config, timings)
        (out / "model").mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out / "model")
        tokenizer.save_pretrained(out / "model")
    clock = time.monotonic()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.monotonic()
        timings[stage] = timings.get(stage, 0.0) + now - clock
        clock = now

    sets = corpus.evaluation_sets(corpus_config)
    accuracy = evaluate.accuracy_by_family(model, tokenizer, sets)
    tqdm.write("accuracy: " + ", ".join(f"{k} {v:.1%}" for k, v in accuracy.items()))
    lap("model")

    context = config.model.context
    transcoder_rows = train_model.token_rows(
        corpus.sentences(corpus_config, "transcoders"),
        tokenizer,
        n_rows=config.transcoder_rows,
        context=context,
    )
    resid_mid, mlp_out = mlp_io(model, transcoder_rows)
    held_out_rows = train_model.token_rows(
        corpus.sentences(corpus_config, "dashboards"),
        tokenizer,
        n_rows=config.dashboard_rows,
        context=context,
    )
    held_resid, held_out = mlp_io(model, held_out_rows)
    not_bos = torch.ones(held_out_rows.shape, dtype=torch.bool)
    not_bos[:, 0] = False
    not_bos = not_bos.flatten()
    transcoders = []
    stats = []
    for layer in range(config.model.n_layers):
        with tqdm(total=config.transcoder.steps, desc=f"transcoder {layer}", unit="step") as bar:

            def on_transcoder_step(_step: int, loss: float) -> None:
                bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
                bar.update()

            transcoder = train_transcoders.train_transcoder(
                resid_mid[layer],
                mlp_out[layer],
                config.transcoder,
                seed=config.seed * 100 + layer,
                on_step=on_transcoder_step,
            )
        transcoders.append(transcoder)
        stats.append(
            train_transcoders.transcoder_stats(
                transcoder, held_resid[layer][not_bos], held_out[layer][not_bos]
            )
        )
        tqdm.write(f"layer {layer}: {stats[-1]}")
    del resid_mid, mlp_out
    train_transcoders.save_transcoder_set(transcoders, out / "transcoders")
    lap("transcoders")

    _dashboards(out, config, held_out_rows, model, tokenizer)
    lap("dashboards")

    samples = card.sample_prompts(model, tokenizer)
    (out / "prompts.json").write_text(json.dumps(samples, indent=2, ensure_ascii=False) + "\n")
    card.save_loss_curve(losses, out / "loss_curve.png")
    (out / "training_log.json").write_text(
        json.dumps(
            {
                "losses": [round(loss, 5) for loss in losses],
                "timings": timings,
                "accuracy": accuracy,
                "transcoders": [dataclasses.asdict(s) for s in stats],
            },
            indent=1,
        )
        + "\n"
    )
    lap("card")
    card.write_card(
        out / "card.md",
        card.CardFigures(
            command=shlex.join(["python", "-m", "inference.demo_pack", *sys.argv[1:]]),
            reused_model=reuse_model,
            accuracy=accuracy,
            eval_sizes={name: len(items) for name, items in sets.items()},
            transcoder_stats=stats,
            samples=samples,
            settings=dataclasses.asdict(config),
            n_params=sum(p.numel() for p in model.parameters()),
            vocab_size=len(tokenizer),
            final_loss=sum(losses[-50:]) / len(losses[-50:]),
            timings=timings,
            software=card.software_versions(),
        ),
    )


if __name__ == "__main__":
    main()
