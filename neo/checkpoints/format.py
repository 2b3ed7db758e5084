"""The neo checkpoint format: the one place that reads, checks and writes checkpoint files for every command.

A neo checkpoint is a Lightning training checkpoint: ``state_dict`` (keys ``net.*``, ``criterion.*``,
``postprocessor.*``; the EMA weights when EMA was on, since Lightning's WeightAveraging writes them there),
``current_model_state`` (the raw weights, only when EMA was on), ``hyper_parameters`` (plain containers:
``model``, ``optim``, ``class_names``, ``label_to_category_id``, ``run_config`` with the run's ``data``),
``epoch`` / ``global_step``, and ``neo_import`` when ``neo-weights import`` wrote it from an official file.
An official file is a lyuwenyu/RT-DETR ``.pth`` (v1 or v2 names) holding ``model`` and/or ``ema.module``.

Every reader here raises :class:`CheckpointError` (a ``ConfigError``: CLIs print it as one paragraph and
exit 1) naming the option, the file, what is wrong with it (missing, empty, truncated, not a checkpoint,
the other kind of checkpoint, another model) and the fix. ``neo-train`` (``ckpt_path=`` and ``pretrained=``),
``neo-eval``, ``neo-predict``, ``neo-export`` and ``neo-weights import`` all read through it.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from neo.config.check import ConfigError
from neo.models.dfine.convert import convert_dfine_state_dict, detect_dfine_architecture, is_dfine
from neo.models.rtdetr.convert import (
    ConversionReport,
    OfficialArchitecture,
    convert_state_dict,
    detect_architecture,
    extract_state_dict,
)

log = logging.getLogger(__name__)

NEO_PREFIXES = ("net.", "criterion.", "postprocessor.")
BACKBONE_KEY = "model.net.backbone.pretrained"  # a backbone's own weights file (read for PResNet backbones)
WEIGHTS = ("ema", "raw")
_EXAMPLES = 3  # key names quoted per kind of mismatch
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format
_PICKLE_MAGIC = b"\x80"  # legacy (pre-1.6) torch.save / plain pickle

# What each reading role expects, and how a user gets a file of that kind.
NEO_FIX = {
    "ckpt_path": "pass a checkpoint of this run (last.ckpt, best.ckpt, interrupted.ckpt or its bucket copy), "
                 "or ckpt_path=auto to take the newest readable one",
    "checkpoint": "pass a neo checkpoint: best.ckpt or last.ckpt of a neo-train run, or a file written by "
                  "neo-weights import",
    "pretrained": "pass a neo checkpoint or an official RT-DETR .pth (v1 or v2)",
    "import": "pass an official RT-DETR .pth (v1 or v2, as released by lyuwenyu/RT-DETR) or its registry "
              "name (neo-weights list --framework rtdetr)",
    BACKBONE_KEY: "pass a PResNet-vd backbone state dict (official key names, bare or under model / state_dict / "
                  "ema.module) or null",
}


class CheckpointError(ConfigError):
    """A checkpoint file cannot be read, is not the kind the command needs, or does not fit the model."""


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [""])[0].split(". ")[0][:160]


def named_value(key: str | None, value: Any) -> str:
    """``key='value'`` as the user typed the option (the quoted value alone without a key), for messages."""
    return f"{key}={str(value)!r}" if key else repr(str(value))


def _where(path: Path, key: str | None, value: Any) -> str:
    """``checkpoint='best.ckpt': /abs/best.ckpt`` (the value as typed, then the file it became)."""
    key = None if key == "import" else key  # a role, not a key=value option
    shown = path if value is None else value
    return f"{named_value(key, shown)}: {path}" if str(shown) != str(path) or key else str(path)


def load_file(path: str | Path, key: str | None = "checkpoint", value: Any = None, trust_pickle: bool = False,
              mmap: bool = False) -> dict[str, Any]:
    """``torch.load`` a checkpoint on the CPU (``weights_only=True`` unless ``trust_pickle``) into a dict.

    Raises CheckpointError for a missing, empty, truncated or non-PyTorch file, a file that needs a full
    unpickle, and a file that holds no dict. ``key``/``value``: the option and value the user typed.
    """
    path = Path(path)
    where = _where(path, key, value)
    fix = NEO_FIX.get(key or "", NEO_FIX["checkpoint"])
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise CheckpointError(f"{where} {what}. Fix: check the path; {fix}.")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{where} is empty (0 bytes; an interrupted save, copy or download). Fix: delete "
                              f"it; {fix}.")
    with path.open("rb") as handle:
        head = handle.read(4)
    if not (head.startswith(_ZIP_MAGIC) or head.startswith(_PICKLE_MAGIC)):
        raise CheckpointError(f"{where} is not a PyTorch checkpoint (it starts with bytes {head!r}, not a "
                              f"torch.save archive). Fix: {fix}.")
    try:
        checkpoint = torch.load(str(path), map_location="cpu", weights_only=not trust_pickle, mmap=mmap)
    except pickle.UnpicklingError as exc:
        if trust_pickle:
            raise CheckpointError(f"{where} cannot be unpickled ({_first_line(exc)}). Fix: {fix}.") from None
        trusted = ("rerun with --trust-pickle" if key == "import" else
                   f"if it is an official RT-DETR file, convert it with neo-weights import {path} --trust-pickle")
        raise CheckpointError(
            f"{where} holds pickled Python objects that a weights-only load refuses ({_first_line(exc)}); neo "
            f"checkpoints hold only tensors and plain values. Fix: if you trust the file, {trusted}; else {fix}."
        ) from None
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError/EOFError/OSError/... on a broken archive
        raise CheckpointError(
            f"{where} is not a readable checkpoint ({type(exc).__name__}: {_first_line(exc)}; {size:,} bytes). "
            f"It is probably truncated (an interrupted copy, save or download). Fix: delete it; {fix}."
        ) from None
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"{where} holds a {type(checkpoint).__name__}, not a checkpoint (a dict of weights "
                              f"and settings). Fix: {fix}.")
    return dict(checkpoint)


def is_neo(checkpoint: Mapping[str, Any]) -> bool:
    """True for a neo checkpoint: a ``state_dict`` whose keys all sit under net./criterion./postprocessor."""
    state = checkpoint.get("state_dict")
    return isinstance(state, Mapping) and bool(state) and all(str(k).startswith(NEO_PREFIXES) for k in state)


def _official_weights(checkpoint: Mapping[str, Any], prefer: str = "ema") -> tuple[dict[str, torch.Tensor], str] | None:
    try:
        return extract_state_dict(dict(checkpoint), prefer)
    except ValueError:
        return None


def _official_summary(state: dict[str, torch.Tensor]) -> str:
    try:
        arch = detect_architecture(state)
    except ValueError:
        return "an official-layout state dict"
    return f"an official RT-DETR {arch.version} checkpoint ({arch.preset}, {arch.num_classes} classes)"


@dataclass
class NeoCheckpoint:
    """A neo checkpoint read by :func:`read_neo`: the file and its content (tensors stay on the CPU)."""

    path: Path
    content: dict[str, Any]

    @property
    def hparams(self) -> dict[str, Any]:
        return dict(self.content.get("hyper_parameters") or {})

    @property
    def model_config(self) -> dict[str, Any]:
        """``hyper_parameters.model`` (preset name, ``net`` arguments, criterion, postprocess)."""
        return dict(self.hparams.get("model") or {})

    @property
    def run_config(self) -> dict[str, Any]:
        return dict(self.hparams.get("run_config") or {})

    @property
    def data_config(self) -> dict[str, Any]:
        """The run's (or the import's) ``data`` config: sizes, class count, dataset paths. Empty if none."""
        return dict(self.run_config.get("data") or {})

    @property
    def imported(self) -> dict[str, Any]:
        """``neo_import`` (source file, ``ema.module``/``model``, v1/v2, preset) of an imported official file."""
        return dict(self.content.get("neo_import") or {})

    @property
    def has_ema(self) -> bool:
        return isinstance(self.content.get("current_model_state"), Mapping)

    def weights(self, choice: str = "ema") -> tuple[dict[str, torch.Tensor], str]:
        """(module state dict, "ema" | "raw"): the one place the EMA-vs-raw choice is made.

        "ema": ``state_dict`` (EMA when the run had EMA, else the raw weights: logged). "raw":
        ``current_model_state`` when the run had EMA, else ``state_dict``. An imported official file
        holds one set of weights; its label is that of the official state it came from.
        """
        if choice not in WEIGHTS:
            raise CheckpointError(f"weights={choice!r} is unknown. Fix: use weights=ema (the validated weights) "
                                  f"or weights=raw.")
        if self.imported:
            return dict(self.content["state_dict"]), "ema" if self.imported.get("state") == "ema.module" else "raw"
        if choice == "raw" and self.has_ema:
            return dict(self.content["current_model_state"]), "raw"
        if choice == "ema" and not self.has_ema:
            log.info("%s was trained without EMA: using its raw weights", self.path)
            return dict(self.content["state_dict"]), "raw"
        return dict(self.content["state_dict"]), choice

    def net_weights(self, choice: str = "ema") -> tuple[dict[str, torch.Tensor], str]:
        """:meth:`weights` restricted to the detector (``net.`` prefix removed)."""
        state, label = self.weights(choice)
        return {k[len("net."):]: v for k, v in state.items() if k.startswith("net.")}, label

    @property
    def epoch(self) -> int:
        return int(self.content.get("epoch", -1))

    @property
    def global_step(self) -> int:
        return int(self.content.get("global_step", -1))


def read_neo(path: str | Path, key: str | None = "checkpoint", value: Any = None, mmap: bool = False,
             need_config: bool = True) -> NeoCheckpoint:
    """Read a neo checkpoint, or raise CheckpointError naming the file and the fix.

    need_config: the file must carry ``hyper_parameters.model`` (to rebuild the module: neo-eval,
    neo-predict, neo-export); resuming only needs the weights.
    """
    path = Path(path)
    checkpoint = load_file(path, key, value, mmap=mmap)
    where = _where(path, key, value)
    if not is_neo(checkpoint):
        official = _official_weights(checkpoint)
        if official is not None:
            what = _official_summary(official[0])
            if key == "ckpt_path":
                fix = (f"to start a new run from these weights use pretrained={path} instead of ckpt_path "
                       f"(which resumes a run of neo-train)")
            else:
                fix = (f"convert it once with: neo-weights import {path} --out {path.stem}_neo.ckpt, then give "
                       f"{path.stem}_neo.ckpt instead")
            raise CheckpointError(f"{where} is {what}, not a neo checkpoint. Fix: {fix}.")
        keys = sorted(map(str, checkpoint))[:6]
        raise CheckpointError(f"{where} is not a neo checkpoint (no 'state_dict' of net.* weights; it has {keys}). "
                              f"Fix: {NEO_FIX.get(key or '', NEO_FIX['checkpoint'])}.")
    result = NeoCheckpoint(path, checkpoint)
    if need_config and not result.model_config:
        raise CheckpointError(f"{where} carries no model config (hyper_parameters.model), so the model cannot be "
                              f"rebuilt. Fix: {NEO_FIX['checkpoint']}.")
    return result


@dataclass
class OfficialCheckpoint:
    """An official RT-DETR file read by :func:`read_official`.

    state: the picked weights with official names; picked: "ema.module", "model" or "state_dict";
    architecture: preset, layout ("v1"/"v2"), class count; converted/report: neo names and what was renamed
    and dropped (completed by ``convert.load_converted``).
    """

    path: Path
    state: dict[str, torch.Tensor]
    picked: str
    architecture: OfficialArchitecture
    converted: dict[str, torch.Tensor]
    report: ConversionReport


def read_official(path: str | Path, prefer: str = "ema", key: str | None = "import", value: Any = None,
                  trust_pickle: bool = False, checkpoint: dict[str, Any] | None = None) -> OfficialCheckpoint:
    """Read an official RT-DETR file (v1 or v2 names; ``ema.module`` or ``model``): weights, layout, preset.

    prefer: "ema" (``ema.module`` when present, else ``model``, as the official loaders do) or "model".
    Raises CheckpointError for unreadable files, neo checkpoints (already converted) and state dicts that
    are not an RT-DETR with a PResNet-vd or HGNetv2 backbone.
    """
    path = Path(path)
    checkpoint = checkpoint if checkpoint is not None else load_file(path, key, value, trust_pickle=trust_pickle)
    where = _where(path, key, value)
    if is_neo(checkpoint):
        raise CheckpointError(
            f"{where} is already a neo checkpoint, not an official RT-DETR file. Fix: use it as it is "
            f"(neo-eval checkpoint={path}, neo-predict checkpoint={path} source=..., neo-train pretrained={path})."
        )
    found = _official_weights(checkpoint, "model" if prefer in ("model", "raw") else "ema")
    if found is None:
        keys = sorted(map(str, checkpoint))[:6]
        raise CheckpointError(f"{where} holds no RT-DETR weights (no 'model', 'ema.module' or bare state dict; it "
                              f"has {keys}). Fix: {NEO_FIX['import']}.")
    state, picked = found
    dfine = is_dfine(state)  # D-FINE (Peterande/D-FINE): its own names and presets
    try:
        architecture = detect_dfine_architecture(state) if dfine else detect_architecture(state)
    except ValueError as exc:
        raise CheckpointError(f"{where}: {exc} Fix: {NEO_FIX['import']}.") from None
    converted, report = convert_dfine_state_dict(state) if dfine else convert_state_dict(state)
    report.source = picked
    return OfficialCheckpoint(path, state, picked, architecture, converted, report)


def check_state_dict_fits(expected: Mapping[str, Any], checkpoint: Mapping[str, Any],
                          path: str | Path | None = None, model_name: str | None = None,
                          key: str | None = "ckpt_path") -> None:
    """Raise CheckpointError when ``checkpoint["state_dict"]`` has other keys or shapes than ``expected``
    (a module's ``state_dict()``): names a few of each kind and the model preset each side was built from."""
    state = checkpoint.get("state_dict") or {}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mis_shaped = [f"{k} (checkpoint {list(state[k].shape)}, model {list(expected[k].shape)})" for k in expected
                  if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(expected[k].shape)]
    if not (missing or unexpected or mis_shaped):
        return
    parts = []
    for label, names in (("missing from the checkpoint", missing), ("unexpected", unexpected),
                         ("with another shape", mis_shaped)):
        if names:
            more = f", ... {len(names) - _EXAMPLES} more" if len(names) > _EXAMPLES else ""
            parts.append(f"{len(names)} keys {label} ({', '.join(names[:_EXAMPLES])}{more})")
    hparams = checkpoint.get("hyper_parameters") or {}
    trained = ((hparams.get("model") or {}).get("name")) if isinstance(hparams, Mapping) else None
    if key != "ckpt_path":  # inference rebuilds the model from the file's own config: the file is inconsistent
        raise CheckpointError(
            f"{named_value(key, path)} does not fit the model its own config describes (model={trained}); "
            f"{'; '.join(parts)}. The file was edited or assembled from two checkpoints. Fix: "
            f"{NEO_FIX['checkpoint']}."
        )
    origin = f"it was trained with model={trained}, this run builds model={model_name}" if trained else \
        f"this run builds model={model_name}"
    fix = f"resume with model={trained} (and the same data.num_classes)" if trained and trained != model_name else \
        "resume with the model preset and data.num_classes the checkpoint was trained with"
    raise CheckpointError(
        f"ckpt_path={str(path)!r} does not fit the model: {origin}; {'; '.join(parts)}. Fix: {fix}; to start "
        f"a new run of the same architecture from its weights with another class count, use pretrained=<file>."
    )


def checkpoint_content(module: torch.nn.Module, **extra: Any) -> dict[str, Any]:
    """A Lightning-format neo checkpoint of ``module`` (an RTDETRModule) at epoch 0: weights, hyper-parameters,
    Lightning's version, plus ``extra`` top-level entries (e.g. ``neo_import``)."""
    import lightning

    return {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams), "epoch": 0,
            "global_step": 0, "pytorch-lightning_version": lightning.__version__, **extra}


def write_checkpoint(path: str | Path, content: dict[str, Any]) -> Path:
    """Write ``content`` atomically (no half-written file on failure), then read it back as every command
    does (weights-only, through :func:`read_neo`); returns the path."""
    from neo.files import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(content, tmp)
    read_neo(path, key=None)
    return path
