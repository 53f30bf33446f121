"""Job-path benchmark: what the queue, the worker and storage add on top of the engine.

    .venv/bin/python benchmarks/jobs.py                       # demo pack if built, else demo-shaped
    .venv/bin/python benchmarks/jobs.py --model tiny --jobs 10 --throughput 20   # a quick run

One real Celery worker process (prefork, concurrency 1, as on a GPU machine) serves the model's
queue against the embedded Postgres/Redis under ``var/bench-jobs`` (or DATABASE_URL/REDIS_URL),
in a database of its own (``atlas_bench_jobs``, recreated each run). This process plays the web
process: it queues jobs through ``jobs.services`` (what the API view calls) and listens to the
job's Channels group, as the websocket consumer does.

Reported (medians over ``--jobs`` sequential jobs after a warm-up job):
- ``engine_ms``: a direct engine call (attribute + prune + graph_to_json) with the same model,
  prompt and settings, here and (timed around the same calls) inside the worker for each job;
- ``job_ms``: submit -> the ``done`` event (queue, claim, heartbeat, progress writes and events,
  the engine, validation, artifact + Graph + GraphNode rows, the job update);
- ``overhead_ms`` = job_ms - that job's engine time in the worker (paired, so the noise of a
  shared machine mostly cancels); plus ``api_validate_ms``, the generate view's
  validation and row insert measured alone with the message send stubbed out (the job path
  above starts after it);
- ``first_event_ms``: submit -> the ``running`` event, and -> the first ``progress`` event;
- throughput: ``--throughput`` jobs queued at once (one batch), until all succeeded;
- steering round trips (``--steering-runs`` each, after a warm-up): ``POST /api/v1/intervene``
  (constrained, then free: three of the prompt's most active features ablated, scaled and set)
  and ``POST /api/v1/steer`` (``--steer-tokens`` tokens) through the real API view, until the
  job's ``done`` event and the ``GET`` of the run with its result, as the explorer's Test panel
  does; with the engine call alone, timed here, for comparison.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ATLAS_VAR_DIR", str(ROOT / "var" / "bench-jobs"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

PROMPT = "w5 w6 w7 w8 w9 w10 w11 w12"
DATABASE = "atlas_bench_jobs"

if os.environ.get("BENCH_ENGINE_TIMES"):
    # Imported by the benchmark's worker (`celery -A benchmarks.jobs`): the real app, plus the
    # engine's own time per job written to a file, so each job's overhead is measured against
    # the engine run inside that same job.
    from celery.signals import worker_process_init

    from core.celery import app as app

    @worker_process_init.connect
    def _time_the_engine(**_: Any) -> None:
        from inference import engine

        path = Path(os.environ["BENCH_ENGINE_TIMES"])
        for name in ("attribute", "prune", "graph_to_json"):
            real = getattr(engine, name)

            def timed(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return _real(*args, **kwargs)
                finally:
                    with path.open("a") as out:
                        out.write(f"{_name} {(time.perf_counter() - started) * 1000:.3f}\n")

            setattr(engine, name, timed)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        default="auto",
        help="demo (inference/packs/demo), demo-shaped (random, d_model 128, 4 layers, 1024 "
        "features a layer), tiny (random, d_model 32, 3 layers), or auto (demo when built)",
    )
    parser.add_argument("--prompt", default=None, help="default: 8 words of the model's vocabulary")
    parser.add_argument("--jobs", type=int, default=20, help="sequential jobs for the medians")
    parser.add_argument("--throughput", type=int, default=50, help="jobs queued at once")
    parser.add_argument("--max-feature-nodes", type=int, default=200)
    parser.add_argument("--steering-runs", type=int, default=20, help="0 skips the steering part")
    parser.add_argument("--steer-tokens", type=int, default=32)
    parser.add_argument(
        "--only", choices=("all", "attribution", "steering"), default="all", help="which part"
    )
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    return parser.parse_args()


# ---------------------------------------------------------------------------------------------
# Model files


def build_pack(kind: str, folder: Path) -> tuple[str, Path, Path, dict[str, int]]:
    """(kind, model folder, transcoder config, shape) for the model to benchmark."""
    demo = ROOT / "inference" / "packs" / "demo"
    if kind in ("auto", "demo") and (demo / "model").is_dir():
        import yaml
        from safetensors import safe_open

        config = json.loads((demo / "model" / "config.json").read_text())
        tc = yaml.safe_load((demo / "transcoders" / "config.yaml").read_text())
        with safe_open(str(demo / "transcoders" / tc["transcoders"][0]), "pt") as first:
            features = int(first.get_slice("W_enc").get_shape()[0])
        shape = {
            "n_layers": config["num_hidden_layers"],
            "d_model": config["hidden_size"],
            "vocab": config["vocab_size"],
            "features": features,
        }
        return "demo", demo / "model", demo / "transcoders" / "config.yaml", shape
    if kind == "demo":
        raise SystemExit("the demo pack is not built (inference/packs/demo); try --model auto")
    from tests.engine import builders

    if kind == "tiny":
        builders.save_model("llama", folder / "model")
        config = builders.save_plt(folder / "transcoders")
        shape = {"n_layers": builders.N_LAYERS, "d_model": builders.D_MODEL}
        shape |= {"vocab": builders.VOCAB, "features": builders.D_TRANSCODER}
        return "tiny", folder / "model", config, shape
    # Demo-shaped: the demo model's sizes with random weights (what a job costs, not what it says).
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    d_model, n_layers, features = 128, 4, 1024
    llama = LlamaConfig(
        vocab_size=builders.VOCAB, hidden_size=d_model, intermediate_size=512,
        num_hidden_layers=n_layers, num_attention_heads=4, num_key_value_heads=4,
        max_position_embeddings=128, bos_token_id=builders.BOS, eos_token_id=2, pad_token_id=3,
        tie_word_embeddings=False,
    )  # fmt: skip
    llama.architectures = ["LlamaForCausalLM"]
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(llama).save_pretrained(folder / "model")
    builders.save_tokenizer(folder / "model")
    config = builders.save_plt(
        folder / "transcoders", n_layers=n_layers, d_model=d_model, d_transcoder=features
    )
    shape = {"n_layers": n_layers, "d_model": d_model, "vocab": builders.VOCAB}
    return "demo-shaped", folder / "model", config, shape | {"features": features}


# ---------------------------------------------------------------------------------------------
# Services


@contextlib.contextmanager
def services() -> Iterator[None]:
    """Embedded Postgres/Redis (unless given) and a fresh database of our own."""
    from webapp import embedded

    with embedded.services(
        embedded.var_dir(),
        postgres=not os.environ.get("DATABASE_URL"),
        redis=not os.environ.get("REDIS_URL"),
    ) as urls:
        os.environ.update(urls)
        import dj_database_url
        import psycopg
        from psycopg.conninfo import make_conninfo

        base = os.environ["DATABASE_URL"]
        cfg = dj_database_url.parse(base)
        parts = {"dbname": cfg.get("NAME"), "user": cfg.get("USER"), "password": cfg.get("PASSWORD"),
                 "host": cfg.get("HOST"), "port": cfg.get("PORT")}  # fmt: skip
        conninfo = make_conninfo(**{k: str(v) for k, v in parts.items() if v})
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
        os.environ["DATABASE_URL"] = urlunsplit(urlsplit(base)._replace(path=f"/{DATABASE}"))
        yield


def start_worker(queue: str, log: Path, engine_times: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BENCH_ENGINE_TIMES": str(engine_times)}
    with log.open("wb") as out:
        return subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "benchmarks.jobs", "worker", "--queues", queue,
                "--concurrency", "1", "--pool", "prefork", "--hostname", f"bench-{uuid.uuid4().hex[:6]}@jobs",
                "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "WARNING",
            ],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


class Listener:
    """Subscribes to a job's group before its message is sent, as an open websocket would be."""

    def __init__(self) -> None:
        from asgiref.sync import async_to_sync
        from channels.layers import get_channel_layer

        self.layer = get_channel_layer()
        self.sync = async_to_sync
        self.channel = self.sync(self.layer.new_channel)()

    def join(self, group: str) -> None:
        self.sync(self.layer.group_add)(group, self.channel)

    def leave(self, group: str) -> None:
        self.sync(self.layer.group_discard)(group, self.channel)

    def next_event(self, timeout: float) -> dict[str, Any]:
        import asyncio

        async def receive() -> dict[str, Any]:
            message = await asyncio.wait_for(self.layer.receive(self.channel), timeout)
            return message["event"]

        return self.sync(receive)()


def run_one(listener: Listener, submit: Any, timeout: float = 300) -> dict[str, float]:
    """Submit one job and time its events (ms from submit)."""
    from django.db import transaction

    started = time.perf_counter()
    with transaction.atomic():
        job = submit()
        listener.join(job.group)  # before commit: the message leaves only on commit
    times: dict[str, float] = {}
    try:
        while True:
            event = listener.next_event(timeout)
            elapsed = (time.perf_counter() - started) * 1000
            times.setdefault(event["type"], elapsed)
            if event["type"] in ("done", "failed", "cancelled"):
                if event["type"] != "done":
                    raise SystemExit(f"job {job.id} ended {event}")
                return times
    finally:
        listener.leave(job.group)


def demo_prompt(kind: str) -> str | None:
    """The demo pack's first prompt, when benchmarking the demo pack."""
    path = ROOT / "inference" / "packs" / "demo" / "prompts.json"
    if kind != "demo" or not path.is_file():
        return None
    prompts = json.loads(path.read_text())
    first = prompts[0] if isinstance(prompts, list) and prompts else None
    if isinstance(first, dict):
        first = first.get("prompt")
    return first if isinstance(first, str) else None


def median(values: list[float]) -> float:
    return round(statistics.median(values), 1)


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory() as tmp, services():
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        kind, model_path, config_path, shape = build_pack(args.model, Path(tmp))
        figures = bench(args, kind, model_path, config_path, shape, Path(tmp))
        print(json.dumps(figures, indent=2))
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2))


def bench(
    args: argparse.Namespace,
    kind: str,
    model_path: Path,
    config_path: Path,
    shape: dict[str, int],
    tmp: Path,
) -> dict[str, Any]:
    from django.contrib.auth.models import User
    from django.db import connection

    from contract.params import AttributeParams
    from features.models import LanguageModel, TranscoderSet
    from inference import engine
    from jobs import dispatch
    from jobs import services as job_services
    from jobs.models import Job

    model = LanguageModel.objects.create(
        slug=f"bench-{kind}", display_name=kind, source=str(model_path),
        n_layers=shape["n_layers"], d_model=shape["d_model"], vocab_size=shape["vocab"],
        max_prompt_tokens=128,
    )  # fmt: skip
    model.default_transcoder_set = TranscoderSet.objects.create(
        model=model, slug="plt", features_per_layer=shape.get("features", 0),
        source=str(config_path),
    )  # fmt: skip
    model.save(update_fields=["default_transcoder_set"])
    owner = User.objects.create_user("bench")
    prompt = args.prompt or demo_prompt(kind) or PROMPT
    params = AttributeParams(max_feature_nodes=args.max_feature_nodes).to_dict()

    def submit(prompts: list[str] | None = None, batch: bool = False) -> Any:
        jobs = job_services.create_attribution_jobs(
            owner=owner, model=model, transcoder_set=model.default_transcoder_set,
            prompts=prompts or [prompt], params=params, batch=batch,
        )  # fmt: skip
        return jobs if batch else jobs[0]

    # The direct engine call, in this process, same settings.
    rm = engine.ReplacementModel.load(model_path, config_path)
    options = {key: params[key] for key in ("max_n_logits", "desired_logit_prob")}

    def direct() -> float:
        started = time.perf_counter()
        graph = engine.attribute(prompt, rm, max_feature_nodes=args.max_feature_nodes, **options)
        pruned = engine.prune(graph)  # the contract's default thresholds, as the job's
        engine.graph_to_json(graph, pruned, slug="bench")
        return (time.perf_counter() - started) * 1000

    direct()  # warm-up
    engine_times = tmp / "engine-times.txt"
    worker = start_worker(dispatch.queue_for(model), tmp / "worker.log", engine_times)
    listener = Listener()

    def engine_ms_in_worker() -> float:
        """The engine's time in the last job (its attribute + prune + graph_to_json)."""
        lines = engine_times.read_text().splitlines()[-3:]
        engine_times.write_text("")
        return sum(float(line.split()[1]) for line in lines)

    figures: dict[str, Any] = {"model": kind, "shape": shape,
                               "prompt_tokens": len(rm.tokenize(prompt))}  # fmt: skip
    try:
        warm = run_one(listener, submit, timeout=600)  # imports torch, loads the model
        figures["warm_up_job_ms"] = round(warm["done"], 1)
        engine_ms_in_worker()
        if args.only in ("all", "steering") and args.steering_runs > 0:
            figures["steering"] = bench_steering(args, model, owner, rm, prompt, listener)
        if args.only == "steering":
            return figures
        engine_ms, job_ms, overhead, running_ms, progress_ms = [], [], [], [], []
        worker_engine_ms = []
        for _ in range(args.jobs):
            engine_ms.append(direct())
            times = run_one(listener, submit)
            worker_engine_ms.append(engine_ms_in_worker())
            job_ms.append(times["done"])
            overhead.append(times["done"] - worker_engine_ms[-1])
            running_ms.append(times["running"])
            progress_ms.append(times["progress"])
        api_ms = time_api_validation(model.slug, owner, prompt)

        connection.close()
        started = time.perf_counter()
        batch = submit([f"{prompt} w{4 + i % 40}" for i in range(args.throughput)], batch=True)
        ids = [job.pk for job in batch]
        while Job.objects.filter(pk__in=ids, status__in=Job.ACTIVE).exists():
            time.sleep(0.05)
        wall = time.perf_counter() - started
        statuses = sorted(set(Job.objects.filter(pk__in=ids).values_list("status", flat=True)))
    finally:
        worker.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.wait(timeout=30)
        if worker.poll() is None:
            worker.kill()
    return {
        **figures,
        "max_feature_nodes": args.max_feature_nodes,
        "sequential_jobs": args.jobs,
        "engine_ms_median_here": median(engine_ms),
        "engine_ms_median_in_worker": median(worker_engine_ms),
        "job_ms_median": median(job_ms),
        "overhead_ms_median": median(overhead),
        "overhead_ms_p90": round(sorted(overhead)[int(0.9 * (len(overhead) - 1))], 1),
        "api_validate_ms_median": api_ms,
        "submit_to_running_event_ms_median": median(running_ms),
        "submit_to_first_progress_event_ms_median": median(progress_ms),
        "throughput_jobs": args.throughput,
        "throughput_wall_s": round(wall, 2),
        "throughput_jobs_per_s": round(args.throughput / wall, 2),
        "throughput_ms_per_job": round(wall * 1000 / args.throughput, 1),
        "throughput_statuses": statuses,
    }


def bench_steering(
    args: argparse.Namespace, model: Any, owner: Any, rm: Any, prompt: str, listener: Listener
) -> dict[str, Any]:
    """Round trips of intervene and steer runs through the API, the worker and back."""
    from rest_framework.test import APIClient

    from inference import engine
    from steering.models import SteeringRun

    client = APIClient(HTTP_HOST="localhost")
    client.force_authenticate(owner)
    clean = engine.intervene(prompt, rm, []).clean_activations
    top = clean.values.argsort(descending=True)[:3].tolist()
    layer, position, feature = zip(*(clean.features[i].tolist() for i in top), strict=True)
    actions = [("ablate", 0.0), ("scale", 3.0), ("set", 2 * float(clean.values[top[2]]))]
    interventions = [
        {"layer": layer[k], "position": position[k], "feature": feature[k], "action": action,
         "value": value}
        for k, (action, value) in enumerate(actions)
    ]  # fmt: skip

    def round_trip(path: str, body: dict[str, Any]) -> float:
        started = time.perf_counter()
        response = client.post(f"/api/v1/{path}", {"model": model.slug, "prompt": prompt,
                                                   "interventions": interventions, **body},
                               format="json")  # fmt: skip
        assert response.status_code == 202, response.content[:500]
        run = response.json()
        group = f"job.{run['job']['id']}"
        listener.join(group)
        try:
            # The job may have finished before we joined: the row says so.
            while not SteeringRun.objects.filter(pk=run["id"], result__isnull=False).exists():
                event = listener.next_event(120)
                if event.get("job") != run["job"]["id"]:
                    continue  # a late event of an earlier run, still in our channel
                if event["type"] == "done":
                    break
                if event["type"] in ("failed", "cancelled"):
                    raise SystemExit(f"run {run['id']} ended {event}")
        finally:
            listener.leave(group)
        stored = client.get(run["url"]).json()
        assert stored["result"] is not None, stored
        return (time.perf_counter() - started) * 1000

    def direct(call: Any) -> float:
        started = time.perf_counter()
        call()
        return (time.perf_counter() - started) * 1000

    cases = {
        "intervene_constrained": ("intervene", {"mode": "constrained"},
                                  lambda: engine.intervene(prompt, rm, interventions)),
        "intervene_free": ("intervene", {"mode": "free"},
                           lambda: engine.intervene(prompt, rm, interventions, mode="free")),
        "steer": ("steer", {"n_tokens": args.steer_tokens, "temperature": 0.5, "seed": 0},
                  lambda: engine.steer_generate(prompt, rm, interventions,
                                                n_tokens=args.steer_tokens, temperature=0.5)),
    }  # fmt: skip
    out: dict[str, Any] = {"runs": args.steering_runs, "interventions": interventions}
    for name, (path, body, call) in cases.items():
        round_trip(path, body)  # warm-up (first use of this code path in the worker)
        trips = [round_trip(path, body) for _ in range(args.steering_runs)]
        engine_alone = [direct(call) for _ in range(args.steering_runs)]
        out[name] = {
            "round_trip_ms_median": median(trips),
            "round_trip_ms_p90": round(sorted(trips)[int(0.9 * (len(trips) - 1))], 1),
            "engine_ms_median_here": median(engine_alone),
        }
    return out


def time_api_validation(model_slug: str, owner: Any, prompt: str, n: int = 20) -> float:
    """The generate view alone (validation, token count, row insert), message send stubbed."""
    from rest_framework.test import APIClient

    from jobs import dispatch
    from jobs.models import Job

    client = APIClient(HTTP_HOST="localhost")
    client.force_authenticate(owner)
    real_send = dispatch.send
    dispatch.send = lambda job: None
    times = []
    try:
        for _ in range(n):
            started = time.perf_counter()
            response = client.post(
                "/api/v1/graphs/generate", {"model": model_slug, "prompt": prompt}, format="json"
            )
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 202, response.content[:500]
            Job.objects.filter(pk=response.json()["id"]).update(status=Job.Status.CANCELLED)
    finally:
        dispatch.send = real_send
    return median(times)


if __name__ == "__main__":
    main()
