#!/usr/bin/env bash
# One CUDA measurement run of the attribution engine, side by side with circuit-tracer 0.5.0.
#
# Meant for a bare GPU machine with python3, torch and transformers but no network: the
# circuit-tracer wheels travel in .whl/ (circuit-tracer, nnsight, transformers 4.57.3 and the
# other packages it needs that the image lacks or has in another version). They are installed
# into /tmp/ct and only the circuit-tracer subprocess sees them (PYTHONPATH), so our engine keeps
# the machine's transformers. .whl/ is not committed (`/.whl/` in .git/info/exclude); rebuild it
# with, for each of circuit-tracer==0.5.0 nnsight==0.6.1 transformers==4.57.3
# huggingface_hub==0.36.2 tokenizers==0.22.2 pydantic==2.14.4 pydantic_core==2.50.5
# annotated_types==0.8.0 typing_inspection==0.4.5 ipython==9.18.1 traitlets==5.16.1 astor==0.8.1
# python_socketio==5.18.1 python_engineio==4.15.1 bidict==0.24.1 zstandard==0.25.0 (25 MB):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     --platform manylinux1_x86_64 -d .whl NAME==VERSION
#
#   OUT=/some/dir bash benchmarks/gpu_run.sh
#
# Steps, each under its own `timeout` (limit s; estimate on an H200 in brackets), logs in $OUT:
#   a_env       nvidia-smi -L, versions, wheels -> /tmp/ct                          60  [~20]
#   b_small     attribution --preset small, cuda, float32, all features, vs ct      60  [~40]
#   c_gemma2    attribution --preset gemma2-2b, cuda, bf16, 32 tokens, 8192 nodes,
#               vs circuit-tracer (bf16; float32 if its bf16 run fails)            150 [~110]
#   d_long      attribution --preset gemma2-2b, cuda, bf16, 2000 tokens, ours only 180 [~100]
#   e_steering  benchmarks/steering.py --device cuda --preset 2b --runs 12          70  [~45]
# then $OUT/figures.json (every step's figures) and $OUT/summary.txt, printed last.
#
# Step d's size: D_TOKENS (2000), D_L0 (64), D_NODES (1024), D_BATCH (32). At l0 64 the engine's
# feature-row buffer (on the GPU while it ranks features) is (D_NODES + ~10) x (26 x D_TOKENS x
# D_L0 + 27 x D_TOKENS) float32: 14 GB at 1024 nodes, 111 GB at 8192 (more than the card),
# hence 1024 nodes by default.
#
# GPU_RUN_TINY=1 runs every step at toy sizes on the CPU, as a dry run: circuit-tracer then comes
# from CT_PY (default /tmp/ctref/bin/python); with CT_PY= (empty) the wheels in $WHEELS are
# installed and used as on the GPU machine. PY (default python3) runs our side.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_run_out}
WORK=$(mktemp -d /tmp/gpu_run.XXXXXX)
mkdir -p "$OUT"
PY=${PY:-python3}
WHEELS=${WHEELS:-.whl}
CT_TARGET=${CT_TARGET:-/tmp/ct}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export HF_HUB_DISABLE_PROGRESS_BARS=1

D_TOKENS=${D_TOKENS:-2000}
D_L0=${D_L0:-64}
D_NODES=${D_NODES:-1024}
D_BATCH=${D_BATCH:-32}
if [ "${GPU_RUN_TINY:-0}" = 1 ]; then
    DEVICE=cpu
    CT_PY=${CT_PY-/tmp/ctref/bin/python}
    SMALL="--d-model 64 --layers 2 --features 512 --vocab 1024 --tokens 12 --l0 8 --batch-size 32"
    GEMMA="--d-model 64 --layers 3 --features 512 --vocab 1024 --l0 8 --batch-size 32"
    C_SIZE="--tokens 12 --max-feature-nodes 40"
    D_SIZE="--tokens 40 --max-feature-nodes 60"
    STEER="--device cpu --preset small --tokens 4 --runs 4 --threads 1"
else
    DEVICE=cuda
    CT_PY=${CT_PY:-}
    SMALL="--batch-size 256"
    GEMMA="--batch-size 256"
    C_SIZE="--tokens 32 --max-feature-nodes 8192"
    D_SIZE="--tokens $D_TOKENS --l0 $D_L0 --max-feature-nodes $D_NODES --batch-size $D_BATCH"
    STEER="--device cuda --preset 2b --runs 12"
fi
if [ -n "$CT_PY" ]; then
    REF="--ctref-python $CT_PY"
else
    REF="--ctref-python $PY --ctref-pythonpath $CT_TARGET"
fi

: >"$WORK/status"
step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $OUT/NAME.log
    local name=$1 limit=$2 start rc ms
    shift 2
    echo "== $name (limit ${limit}s): $*"
    start=$(date +%s%N)
    { echo "\$ $*"; timeout -k 5 "$limit" "$@"; } >"$OUT/$name.log" 2>&1
    rc=$?
    ms=$((($(date +%s%N) - start) / 1000000))
    echo "$name $rc $((ms / 1000)).$((ms % 1000 / 100)) $limit" >>"$WORK/status"
    echo "   rc=$rc in $((ms / 1000))s"
    if [ "$rc" != 0 ]; then tail -n 15 "$OUT/$name.log" | cut -c 1-300; fi
}

env_and_wheels() {
    nvidia-smi -L || echo "(no nvidia-smi)"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
    "$PY" -c 'import sys, torch, transformers; print("python", sys.version.split()[0],
        "torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available(),
        "transformers", transformers.__version__)'
    nproc
    free -g
    df -h /tmp | tail -n 1
    if [ -z "$CT_PY" ]; then
        ls "$WHEELS"
        du -sh "$WHEELS"
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target "$CT_TARGET" "$WHEELS"/*.whl || return 1
        PYTHONPATH=$CT_TARGET "$PY" -c 'import circuit_tracer, nnsight, transformers, torch
from circuit_tracer.replacement_model.replacement_model_nnsight import NNSightReplacementModel
print("circuit-tracer", circuit_tracer.__version__, "nnsight", nnsight.__version__,
      "transformers", transformers.__version__, "torch", torch.__version__)'
    else
        "$CT_PY" -c 'import circuit_tracer, nnsight, transformers
print("circuit-tracer", circuit_tracer.__version__, "nnsight", nnsight.__version__,
      "transformers", transformers.__version__)'
    fi
}

export PY CT_PY WHEELS CT_TARGET
export -f env_and_wheels
ATTR="$PY benchmarks/attribution.py --device $DEVICE"
step a_env 60 bash -c env_and_wheels
# shellcheck disable=SC2086  # the size variables are word lists on purpose
step b_small 60 $ATTR --preset small --dtype float32 $SMALL $REF --reference-timeout 35 \
    --json "$WORK/b_small.json"
# shellcheck disable=SC2086
step c_gemma2 150 $ATTR --preset gemma2-2b --dtype bfloat16 $GEMMA $C_SIZE $REF \
    --reference-timeout 90 --json "$WORK/c_gemma2.json"
# shellcheck disable=SC2086
step d_long 180 $ATTR --preset gemma2-2b --dtype bfloat16 $GEMMA $D_SIZE --no-reference \
    --json "$WORK/d_long.json"
# shellcheck disable=SC2086
step e_steering 70 "$PY" benchmarks/steering.py $STEER

"$PY" - "$WORK" "$OUT" <<'EOF'
import json, math, sys
from pathlib import Path

work, out = Path(sys.argv[1]), Path(sys.argv[2])
figures = {"steps": {}}
for line in (work / "status").read_text().splitlines():
    name, rc, seconds, limit = line.split()
    entry = {"rc": int(rc), "wall_s": float(seconds), "limit_s": int(limit)}
    if (work / f"{name}.json").is_file():
        entry |= json.loads((work / f"{name}.json").read_text())
    figures["steps"][name] = entry
log = (out / "e_steering.log").read_text(errors="replace") if (out / "e_steering.log").is_file() else ""
lines = log.splitlines()
starts = [i for i, l in enumerate(lines) if l == "{"]
if starts and "e_steering" in figures["steps"]:
    try:
        figures["steps"]["e_steering"] |= json.loads("\n".join(lines[starts[-1]:]))
    except ValueError as exc:
        figures["steps"]["e_steering"]["parse_error"] = str(exc)
(out / "figures.json").write_text(json.dumps(figures, indent=1, default=str))


def ph(step, name, key="wall_s"):
    for row in step.get("ours", {}).get("phases", []):
        if row["phase"] == name:
            return row.get(key)
    return None


def f(v, spec=".1f"):
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


rows = ["step         rc  wall/limit s"]
for name, s in figures["steps"].items():
    rows.append(f"{name:12s} {s['rc']:3d}  {s['wall_s']:6.1f}/{s['limit_s']}")
rows.append("")
rows.append(
    "attribution  build_s  load_s  attr_s  fwd_s  feat_s  prune_s  GPU_MiB  RSS_MiB  active  "
    "| ct_load_s ct_attr_s ct_GPU_MiB ct_dtype | nodes= edges= max|dA|/max|A|"
)
for name in ("b_small", "c_gemma2", "d_long"):
    s = figures["steps"].get(name, {})
    if "ours" not in s:
        rows.append(f"{name:12s} (no figures; see {name}.log)")
        continue
    o, ref, agree = s["ours"], s.get("reference", {}), s.get("agreement", {})
    rss = max((r.get("peak_rss_mib", 0) for r in o["phases"]), default=None)
    line = (
        f"{name:12s} {f(s.get('build_s')):>7s} {f(ph(s, 'load')):>7s} "
        f"{f(ph(s, 'attribute (total)')):>7s} {f(ph(s, 'forward')):>6s} "
        f"{f(ph(s, 'features')):>7s} {f(ph(s, 'prune')):>8s} {f(o.get('gpu_peak_mib'), 'd'):>8s} "
        f"{f(rss, 'd'):>8s} {o['active_features']:7d}  "
    )
    if "error" in ref:
        line += "| circuit-tracer failed (see log)"
    elif ref:
        gpu = max(ref.get("gpu_peak_mib", {}).values(), default=None)
        dtype = ref["dtype"] + ("*" if "fallback" in ref else "")
        rel = agree.get("max_abs_diff_rel")
        line += (
            f"| {f(ref['load_s']):>9s} {f(ref['attribute_s']):>9s} {f(gpu, '.0f'):>10s} "
            f"{dtype:>8s} | {agree.get('nodes_equal')} {agree.get('edges_equal')} {f(rel, '.1e')}"
        )
    rows.append(line)
d = figures["steps"].get("d_long", {}).get("ours")
if d and "gpu_peak_mib" in d:
    rows.append(
        f"d_long: peak GPU allocated {d['gpu_peak_mib']} MiB (reserved "
        f"{d.get('gpu_peak_reserved_mib')} MiB); below 80 GiB: {d['gpu_peak_below_80GiB']}"
    )
e = figures["steps"].get("e_steering", {}).get("generation")
if e:
    rows.append(
        f"e_steering: {e['preset']} {e['dtype']} generate {e['generate_batch1_tok_s']} tok/s "
        f"(batch 2: {e['generate_batch2_tok_s_per_row']}/row), steer_generate "
        f"{e['steer_generate_tok_s_per_row']}/row"
    )
(out / "summary.txt").write_text("\n".join(rows) + "\n")
print("\n".join(rows))
EOF
rm -rf "$WORK"
