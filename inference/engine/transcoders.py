"""Transcoders: per-layer (PLT) and cross-layer (CLT) sets in circuit-tracer's file formats.

Formats read:
- circuit-tracer PLT file ``layer_{i}.safetensors``: ``W_enc`` (F, d), ``W_dec`` (F, d), ``b_enc`` (F,),
  ``b_dec`` (d,), optional ``activation_function.threshold`` (F,) (JumpReLU) and ``W_skip`` (d, d)
  applied as ``x @ W_skip.T``.
- circuit-tracer CLT folder: ``W_enc_{i}.safetensors`` with ``W_enc_{i}`` (F, d), ``b_enc_{i}``,
  ``b_dec_{i}``, optional ``threshold_{i}`` and ``W_skip_{i}`` (d, d) applied as ``x @ W_skip_{i}``
  (circuit-tracer's in-memory CLT orientation); ``W_dec_{i}.safetensors`` with ``W_dec_{i}``
  (F, L-i, d): the decoder of a layer-i feature into layers i..L-1.
- GemmaScope ``.npz``: ``W_enc`` (d, F), ``W_dec`` (F, d), ``b_enc``, ``b_dec``, ``threshold``.
- ``config.yaml``: ``model_kind`` (transcoder_set | cross_layer_transcoder), ``feature_input_hook``,
  ``feature_output_hook``, ``transcoders`` (paths relative to the config's folder, or
  ``hf://repo/path[@revision]`` URIs), optional ``scan``, ``activation`` (relu | topk) and ``k``.

Decoders stay on disk: safetensors decoders are memory-mapped and only the rows of active
features are read, so a set far larger than memory costs only what a prompt activates.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from huggingface_hub import hf_hub_download

from .adapters import INPUT_HOOKS, OUTPUT_HOOKS


class TranscoderLoadError(ValueError):
    """A transcoder path, file or shape is wrong; the message says which."""


# ---------------------------------------------------------------------------------------------
# Activation functions


@dataclass
class JumpReLU:
    threshold: torch.Tensor  # (F,)

    def __call__(self, pre: torch.Tensor) -> torch.Tensor:
        return pre * (pre > self.threshold)


@dataclass
class ReLU:
    def __call__(self, pre: torch.Tensor) -> torch.Tensor:
        return torch.relu(pre)


@dataclass
class TopK:
    k: int

    def __call__(self, pre: torch.Tensor) -> torch.Tensor:
        # circuit-tracer's TopK keeps the k largest pre-activations as they are (no ReLU).
        _, idx = torch.topk(pre, k=self.k, dim=-1)
        gate = torch.zeros_like(pre).scatter_(-1, idx, 1.0)
        return pre * gate


Activation = JumpReLU | ReLU | TopK


# ---------------------------------------------------------------------------------------------
# Decoder rows, eager or memory-mapped

_SAFETENSORS_DTYPES = {
    "F32": (np.float32, torch.float32),
    "F16": (np.float16, torch.float16),
    "BF16": (np.uint16, torch.bfloat16),  # numpy has no bfloat16: read the bits, view in torch
    "F64": (np.float64, torch.float64),
}


class MappedTensor:
    """A tensor inside a .safetensors file, memory-mapped; indexing rows reads only those rows."""

    def __init__(self, path: Path, key: str) -> None:
        with open(path, "rb") as f:
            header_len = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(header_len))
        if key not in header:
            raise TranscoderLoadError(f"{path}: no tensor {key!r}")
        info = header[key]
        if info["dtype"] not in _SAFETENSORS_DTYPES:
            raise TranscoderLoadError(f"{path}: unsupported dtype {info['dtype']} for {key}")
        np_dtype, self.torch_dtype = _SAFETENSORS_DTYPES[info["dtype"]]
        self.shape = tuple(info["shape"])
        start = 8 + header_len + info["data_offsets"][0]
        self._array = np.memmap(path, dtype=np_dtype, mode="r", offset=start, shape=self.shape)

    def rows(self, ids: torch.Tensor, column: int | None = None) -> torch.Tensor:
        """Rows ``ids``; with ``column``, only that index of the second axis of each."""
        ids_np = ids.cpu().numpy()
        picked = self._array[ids_np] if column is None else self._array[ids_np, column]
        return torch.from_numpy(np.ascontiguousarray(picked)).view(self.torch_dtype)


class DecoderRows:
    """Decoder of one source layer: rows (k,) -> (k, n_out_layers, d_model)."""

    def __init__(self, weights: torch.Tensor | MappedTensor) -> None:
        self._weights = weights
        shape = weights.shape
        # PLT decoders are (F, d); treat them as writing to one layer.
        self.n_out_layers = 1 if len(shape) == 2 else shape[1]
        self.d_transcoder = shape[0]
        self.d_model = shape[-1]

    def rows(
        self,
        ids: torch.Tensor,
        device: torch.device,
        dtype: torch.dtype,
        out_layer: int | None = None,
    ) -> torch.Tensor:
        """(k, n_out_layers, d_model) rows ``ids``, or (k, d_model) into output layer
        ``out_layer`` alone (0 = the source layer): a cross-layer decoder then reads only it."""
        column = None if self.n_out_layers == 1 else out_layer  # a PLT's rows are (F, d)
        if isinstance(self._weights, MappedTensor):
            picked = self._weights.rows(ids, column)
        else:
            picked = self._weights[ids.to(self._weights.device)]
            picked = picked if column is None else picked[:, column]
        n_out = () if out_layer is not None else (self.n_out_layers,)
        return picked.reshape(len(ids), *n_out, self.d_model).to(device, dtype)


# ---------------------------------------------------------------------------------------------
# The set


@dataclass
class Transcoders:
    """Encoders per layer, decoders per source layer; PLT when every decoder writes one layer.

    ``skip[l]`` is oriented so that the skip output is ``x_in @ skip[l]`` (d_model, d_model).
    """

    W_enc: list[torch.Tensor]  # per layer (d_transcoder, d_model)
    b_enc: list[torch.Tensor]  # per layer (d_transcoder,)
    b_dec: list[torch.Tensor]  # per output layer (d_model,)
    activations: list[Activation]
    decoders: list[DecoderRows]
    skip: list[torch.Tensor | None]
    feature_input_hook: str
    feature_output_hook: str
    scan: str | None = None

    @property
    def n_layers(self) -> int:
        return len(self.W_enc)

    @property
    def d_transcoder(self) -> int:
        return self.W_enc[0].shape[0]

    @property
    def d_model(self) -> int:
        return self.W_enc[0].shape[1]

    @property
    def cross_layer(self) -> bool:
        return any(dec.n_out_layers > 1 for dec in self.decoders)

    def encode(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        """Feature activations at one layer: (n_pos, d_model) -> (n_pos, d_transcoder)."""
        w = self.W_enc[layer]
        return self.activations[layer](x.to(w.dtype) @ w.T + self.b_enc[layer])

    def to(self, device: torch.device | str, dtype: torch.dtype) -> Transcoders:
        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(device, dtype)

        def move_act(a: Activation) -> Activation:
            return JumpReLU(move(a.threshold)) if isinstance(a, JumpReLU) else a

        return Transcoders(
            W_enc=[move(w) for w in self.W_enc],
            b_enc=[move(b) for b in self.b_enc],
            b_dec=[move(b) for b in self.b_dec],
            activations=[move_act(a) for a in self.activations],
            decoders=self.decoders,
            skip=[None if s is None else move(s) for s in self.skip],
            feature_input_hook=self.feature_input_hook,
            feature_output_hook=self.feature_output_hook,
            scan=self.scan,
        )

    def validate(self, n_layers: int, d_model: int) -> None:
        if self.n_layers != n_layers:
            raise TranscoderLoadError(
                f"transcoders cover {self.n_layers} layers but the model has {n_layers}"
            )
        if self.d_model != d_model:
            raise TranscoderLoadError(
                f"transcoders have d_model {self.d_model} but the model has {d_model}"
            )
        for layer, dec in enumerate(self.decoders):
            expected = 1 if not self.cross_layer else n_layers - layer
            if dec.d_model != d_model or dec.n_out_layers != expected:
                raise TranscoderLoadError(f"layer {layer} decoder has a mismatched shape")
        if self.feature_input_hook not in INPUT_HOOKS:
            raise TranscoderLoadError(f"unsupported feature_input_hook {self.feature_input_hook!r}")
        if self.feature_output_hook not in OUTPUT_HOOKS:
            raise TranscoderLoadError(
                f"unsupported feature_output_hook {self.feature_output_hook!r}"
            )


# ---------------------------------------------------------------------------------------------
# Loading


def _read_safetensors(path: Path, skip: Sequence[str] = ()) -> dict[str, torch.Tensor]:
    from safetensors import safe_open

    out: dict[str, torch.Tensor] = {}
    with safe_open(str(path), framework="pt") as f:
        for key in f.keys():  # noqa: SIM118 -- safe_open is not a mapping
            if key not in skip:
                out[key] = f.get_tensor(key)
    return out


def _check_plt(params: dict[str, torch.Tensor], source: Path) -> None:
    for key in ("W_enc", "b_enc", "b_dec"):
        if key not in params:
            raise TranscoderLoadError(f"{source}: missing {key}")
    f_enc, d = params["W_enc"].shape
    if params["b_enc"].shape != (f_enc,) or params["b_dec"].shape != (d,):
        raise TranscoderLoadError(f"{source}: b_enc/b_dec shapes do not match W_enc {(f_enc, d)}")


@dataclass
class _Layer:
    W_enc: torch.Tensor
    b_enc: torch.Tensor
    b_dec: torch.Tensor
    activation: Activation
    decoder: DecoderRows
    skip: torch.Tensor | None


def load_plt_layer(path: Path, activation: Activation | None = None) -> _Layer:
    """One per-layer transcoder from a circuit-tracer .safetensors or a GemmaScope .npz file."""
    if not path.is_file():
        raise TranscoderLoadError(f"transcoder file not found: {path}")
    if path.suffix == ".npz":
        raw = np.load(path)
        params = {k: torch.from_numpy(np.asarray(raw[k])) for k in raw.files}
        params["W_enc"] = params["W_enc"].T.contiguous()  # GemmaScope stores (d, F)
        if "threshold" in params:
            params["activation_function.threshold"] = params.pop("threshold")
        decoder: torch.Tensor | MappedTensor = params["W_dec"]
    else:
        params = _read_safetensors(path, skip=("W_dec",))
        decoder = MappedTensor(path, "W_dec")
    _check_plt(params, path)
    f_enc, d = params["W_enc"].shape
    if tuple(decoder.shape) != (f_enc, d):
        raise TranscoderLoadError(f"{path}: W_dec shape {tuple(decoder.shape)} != {(f_enc, d)}")
    if activation is None:
        threshold = params.get("activation_function.threshold")
        activation = JumpReLU(threshold) if threshold is not None else ReLU()
    skip = params.get("W_skip")
    if skip is not None:
        if skip.shape != (d, d):
            raise TranscoderLoadError(f"{path}: W_skip shape {tuple(skip.shape)} != {(d, d)}")
        skip = skip.T.contiguous()  # circuit-tracer applies PLT skips as x @ W_skip.T
    return _Layer(
        params["W_enc"], params["b_enc"], params["b_dec"], activation, DecoderRows(decoder), skip
    )


def load_plt_set(
    paths: Sequence[Path],
    feature_input_hook: str,
    feature_output_hook: str,
    *,
    scan: str | None = None,
    activation: Activation | None = None,
) -> Transcoders:
    layers = [load_plt_layer(p, activation) for p in paths]
    d_transcoders = {layer.W_enc.shape[0] for layer in layers}
    if len(d_transcoders) != 1:
        raise TranscoderLoadError(f"layers disagree on d_transcoder: {sorted(d_transcoders)}")
    return Transcoders(
        W_enc=[layer.W_enc for layer in layers],
        b_enc=[layer.b_enc for layer in layers],
        b_dec=[layer.b_dec for layer in layers],
        activations=[layer.activation for layer in layers],
        decoders=[layer.decoder for layer in layers],
        skip=[layer.skip for layer in layers],
        feature_input_hook=feature_input_hook,
        feature_output_hook=feature_output_hook,
        scan=scan,
    )


def load_clt(
    folder: Path,
    feature_input_hook: str,
    feature_output_hook: str,
    *,
    scan: str | None = None,
    activation: Activation | None = None,
) -> Transcoders:
    """A cross-layer transcoder folder (``W_enc_{i}``/``W_dec_{i}`` safetensors)."""
    enc_files = sorted(folder.glob("W_enc_*.safetensors"))
    if not enc_files:
        raise TranscoderLoadError(f"no W_enc_*.safetensors in {folder}")
    n_layers = len(enc_files)
    W_enc, b_enc, b_dec, acts, decoders, skips = [], [], [], [], [], []
    for i in range(n_layers):
        enc_path, dec_path = folder / f"W_enc_{i}.safetensors", folder / f"W_dec_{i}.safetensors"
        if not enc_path.is_file() or not dec_path.is_file():
            raise TranscoderLoadError(f"{folder}: missing W_enc_{i} or W_dec_{i}.safetensors")
        p = _read_safetensors(enc_path)
        if f"W_enc_{i}" not in p:
            raise TranscoderLoadError(f"{enc_path}: missing W_enc_{i}")
        W_enc.append(p[f"W_enc_{i}"])
        b_enc.append(p[f"b_enc_{i}"])
        b_dec.append(p[f"b_dec_{i}"])
        threshold = p.get(f"threshold_{i}")
        acts.append(
            activation or (JumpReLU(threshold.reshape(-1)) if threshold is not None else ReLU())
        )
        # CLT skips are applied as x @ W_skip (circuit-tracer's orientation for CLTs).
        skips.append(p.get(f"W_skip_{i}"))
        dec = MappedTensor(dec_path, f"W_dec_{i}")
        f_enc, d = W_enc[-1].shape
        if dec.shape != (f_enc, n_layers - i, d):
            raise TranscoderLoadError(
                f"{dec_path}: W_dec_{i} shape {dec.shape} != {(f_enc, n_layers - i, d)}"
            )
        decoders.append(DecoderRows(dec))
    return Transcoders(
        W_enc=W_enc,
        b_enc=b_enc,
        b_dec=b_dec,
        activations=acts,
        decoders=decoders,
        skip=skips,
        feature_input_hook=feature_input_hook,
        feature_output_hook=feature_output_hook,
        scan=scan,
    )


_HF_URI = re.compile(r"^hf://(?P<repo>[^/]+/[^/@]+)/(?P<file>[^@]+?)(?:@(?P<rev>.+))?$")
_HUB_ID = re.compile(r"^(?P<repo>[\w.-]+/[\w.-]+)(?:@(?P<rev>.+))?$")


def _fetch(repo: str, filename: str, revision: str | None, what: str) -> Path:
    try:
        return Path(hf_hub_download(repo, filename, revision=revision))
    except Exception as exc:
        raise TranscoderLoadError(f"cannot fetch {what}: {exc}") from exc


def resolve_path(entry: str, base: Path | str) -> Path:
    """A config entry: a path relative to the config's folder (or, for a config from the hub,
    a file in its repo "org/repo[@revision]"), or an ``hf://org/repo/path[@revision]`` URI."""
    if entry.startswith("hf://"):
        match = _HF_URI.match(entry)
        if match is None:
            raise TranscoderLoadError(f"malformed hf:// URI {entry!r} (want hf://org/repo/path)")
        return _fetch(match["repo"], match["file"], match["rev"], entry)
    if isinstance(base, str):
        hub = _HUB_ID.match(base)
        assert hub is not None
        return _fetch(hub["repo"], entry, hub["rev"], f"{entry} from {base}")
    path = Path(entry)
    return path if path.is_absolute() else base / path


def _layer_number(path: Path) -> int:
    match = re.search(r"(\d+)", path.stem)
    return int(match.group(1)) if match else -1


def load_transcoders(path: str | Path) -> Transcoders:
    """Load a config.yaml, a CLT folder, a folder of ``layer_{i}.safetensors`` files, or a hub
    repo ``org/repo[@revision]`` holding a config.yaml (files come from the hub cache).

    Bare folders carry no hook names; they default to circuit-tracer's defaults for its own
    formats (``mlp.hook_in`` -> ``mlp.hook_out`` for PLT sets, ``hook_resid_mid`` ->
    ``hook_mlp_out`` for CLTs).
    """
    if not Path(path).exists() and _HUB_ID.match(str(path)):
        # A hub id: its config.yaml names the files, relative to the repo.
        repo, revision = _hub_parts(str(path))
        config_path = _fetch(repo, "config.yaml", revision, f"config.yaml of {path}")
        return _load_from_config(config_path, base=str(path))
    path = Path(path)
    if path.is_dir() and (path / "config.yaml").is_file():
        path = path / "config.yaml"
    if path.is_file() and path.suffix in (".yaml", ".yml"):
        return _load_from_config(path)
    if not path.is_dir():
        raise TranscoderLoadError(f"transcoders not found: {path}")
    if (path / "W_enc_0.safetensors").is_file():
        return load_clt(path, "hook_resid_mid", "hook_mlp_out", scan=path.name)
    files = sorted(path.glob("layer_*.safetensors"), key=_layer_number)
    if not files:
        raise TranscoderLoadError(f"{path}: no config.yaml, layer_*.safetensors or W_enc_0")
    return load_plt_set(files, "mlp.hook_in", "mlp.hook_out", scan=path.name)


def _hub_parts(hub_id: str) -> tuple[str, str | None]:
    match = _HUB_ID.match(hub_id)
    assert match is not None
    return match["repo"], match["rev"]


def _load_from_config(config_path: Path, base: Path | str | None = None) -> Transcoders:
    try:
        config = yaml.safe_load(config_path.read_text())
    except yaml.YAMLError as exc:
        raise TranscoderLoadError(f"{config_path}: invalid YAML ({exc})") from exc
    if not isinstance(config, dict):
        raise TranscoderLoadError(f"{config_path}: expected a mapping")
    for key in ("model_kind", "feature_input_hook", "feature_output_hook", "transcoders"):
        if key not in config:
            raise TranscoderLoadError(f"{config_path}: missing {key!r}")
    activation: Activation | None = None
    if config.get("activation") == "topk":
        if not isinstance(config.get("k"), int) or config["k"] < 1:
            raise TranscoderLoadError(f"{config_path}: activation topk needs a positive integer k")
        activation = TopK(config["k"])
    elif config.get("activation") == "relu":
        activation = ReLU()
    elif config.get("activation") is not None:
        raise TranscoderLoadError(f"{config_path}: unknown activation {config['activation']!r}")
    entries = config["transcoders"]
    if isinstance(entries, str):
        entries = [entries]
    root = base if base is not None else config_path.parent
    paths = [resolve_path(str(e), root) for e in entries]
    scan = config.get("scan") or (base if isinstance(base, str) else config_path.parent.name)
    hooks = (config["feature_input_hook"], config["feature_output_hook"])
    if config["model_kind"] == "transcoder_set":
        return load_plt_set(paths, *hooks, scan=scan, activation=activation)
    if config["model_kind"] == "cross_layer_transcoder":
        # Either the CLT folder itself or its files listed one by one: both name one folder.
        folder = paths[0] if paths[0].is_dir() else paths[0].parent
        return load_clt(folder, *hooks, scan=scan, activation=activation)
    raise TranscoderLoadError(f"{config_path}: unknown model_kind {config['model_kind']!r}")
