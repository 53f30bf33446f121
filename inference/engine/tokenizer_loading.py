"""A model folder's tokenizer, read from its tokenizer.json when that gives the same tokenizer.

transformers 5's AutoTokenizer, for a tokenizer class with its own ``__init__`` (GemmaTokenizer
among them), parses tokenizer.json in Python twice, extracts the vocabulary and merges, and
rebuilds the Rust tokenizer from them with the normalizer, pre-tokenizer and decoder that the
class itself writes down: 3.6 CPU s for Gemma-3's 262,144 tokens and 514,906 merges, against
1.9 s for reading the file in Rust. Where the file's components are exactly those the class
would build, the two are the same tokenizer (same vocabulary, merges, added tokens, special
tokens; tests/engine/test_tokenizer_loading.py compares them), so we read the file. Anything
else goes through AutoTokenizer unchanged.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer
from tokenizers.models import BPE
from transformers import AutoTokenizer
from transformers.models.auto.tokenization_auto import tokenizer_class_from_name
from transformers.tokenization_utils_tokenizers import TokenizersBackend

# tokenizer_config.json entries about where the files came from, not what the tokenizer does.
_PROVENANCE = ("tokenizer_class", "is_local", "local_files_only")
# The BPE options a class's rebuild sets; the vocabulary and merges come from the file either way.
_BPE_OPTIONS = (
    "unk_token",
    "fuse_unk",
    "byte_fallback",
    "dropout",
    "ignore_merges",
    "continuing_subword_prefix",
    "end_of_word_suffix",
)


def load_tokenizer(name: str) -> Any:
    """The tokenizer of a local folder or hub id, as AutoTokenizer would build it."""
    folder = Path(name).expanduser()
    tokenizer = _from_tokenizer_json(folder) if folder.is_dir() else None
    return tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(name)


def _from_tokenizer_json(folder: Path) -> TokenizersBackend | None:
    """The folder's tokenizer.json read in Rust, or None where AutoTokenizer may build another
    tokenizer from it (a class that rebuilds other components, or a config we do not mirror)."""
    file, config_file = folder / "tokenizer.json", folder / "tokenizer_config.json"
    if not (file.is_file() and config_file.is_file()):
        return None
    config = json.loads(config_file.read_text(encoding="utf-8"))
    cls = tokenizer_class_from_name(str(config.get("tokenizer_class") or ""))
    plain = all(not k.endswith("_token") or isinstance(v, str) for k, v in config.items())
    if (
        cls is None
        or not issubclass(cls, TokenizersBackend)
        or cls.model is not BPE
        or config.get("backend", "tokenizers") != "tokenizers"
        or "added_tokens_decoder" in config
        or "auto_map" in config
        or not plain
    ):
        return None
    kwargs = {k: v for k, v in config.items() if k not in _PROVENANCE}
    rebuilt = cls(**kwargs).backend_tokenizer  # the class's own components, on a tiny vocabulary
    tokenizer = TokenizersBackend(
        tokenizer_file=str(file),
        name_or_path=str(folder),
        padding_side=cls.padding_side,
        truncation_side=cls.truncation_side,
        model_input_names=cls.model_input_names,
        **kwargs,
    )
    return tokenizer if _same_components(tokenizer.backend_tokenizer, rebuilt) else None


def _same_components(read: Tokenizer, rebuilt: Tokenizer) -> bool:
    """Whether the class's rebuild of the file would keep what the file says. A component's
    pickle is its JSON serialisation, so equal pickles are equal components."""
    if not (isinstance(read.model, BPE) and isinstance(rebuilt.model, BPE)):
        return False
    parts = ("normalizer", "pre_tokenizer", "decoder")
    return all(
        pickle.dumps(getattr(read, p)) == pickle.dumps(getattr(rebuilt, p)) for p in parts
    ) and all(getattr(read.model, o) == getattr(rebuilt.model, o) for o in _BPE_OPTIONS)
