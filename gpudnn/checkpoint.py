"""Checkpoints: atomic, pickle-free, versioned and checksummed.

A checkpoint is an ``.npz`` archive of plain arrays: ``model/<param>`` and ``optim/<buffer>``,
plus ``__meta__``, a JSON document (format, version, model architecture, frozen parameters, optimizer
hyper-parameters and step, loss, epoch, random-generator state, user extras) whose
``checksum`` is a SHA-256 over every array's name, dtype, shape and bytes and (since version 2)
over the rest of the document.

Writing goes through ``files.atomic_write``: a temporary file in the same folder, flushed and
fsync'ed, renamed over the target (and the folder fsync'ed), so a crash at any moment leaves
either the old or the new checkpoint, never a torn one; a full disk raises SaveError saying the
previous checkpoint is intact. Loading never unpickles and verifies format, version and checksum
before touching the model; a file that is not a checkpoint, or a truncated or altered one, raises
CheckpointError saying what the file is.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .files import ArrayFileError, SaveError, atomic_write, existing_file, read_npz
from .nn.sequential import Sequential
from .optim.optimizers import Optimizer

__all__ = ["Checkpoint", "CheckpointError", "SaveError", "atomic_write", "load_checkpoint", "read_checkpoint",
           "save_checkpoint"]

FORMAT = "gpudnn-checkpoint"
VERSION = 2  # 2: the checksum covers the metadata too; version 1 files (arrays only) still load
READABLE_VERSIONS = (1, 2)


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, altered, of another version, or does not fit."""


@dataclass
class Checkpoint:
    model: Sequential
    epoch: int | None = None
    optimizer: Optimizer | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def extra(self) -> dict[str, Any]:
        return self.meta.get("extra", {})


def _checksum(arrays: dict[str, np.ndarray], meta: dict[str, Any] | None = None) -> str:
    """SHA-256 over the arrays and, when given, the metadata other than its checksum."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    if meta is not None:
        h.update(json.dumps({k: v for k, v in meta.items() if k != "checksum"}, sort_keys=True).encode())
    return h.hexdigest()


def save_checkpoint(path: str | os.PathLike, model: Sequential, optimizer: Optimizer | None = None, *,
                    epoch: int | None = None, loss: Any = None, extra: dict[str, Any] | None = None) -> Path:
    """Write model weights and architecture, optimizer state, epoch, RNG state and extras, atomically."""
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    meta: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "model": model.config(), "epoch": epoch,
        "dtype": str(model.parameters()[0].data.dtype), "backend": model.backend.name,
        "rng": model.backend.rng.bit_generator.state, "loss": loss.config() if loss is not None else None,
        "extra": extra or {}, "frozen": model.frozen_parameter_names(),
    }
    if optimizer is not None:
        state = optimizer.state_dict()
        arrays.update({f"optim/{k}": v for k, v in state.pop("buffers").items()})
        meta["optimizer"] = state
    try:
        meta["checksum"] = _checksum(arrays, meta)
        blob = json.dumps(meta, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"checkpoint extras must be JSON-serialisable finite values: {exc}") from None
    arrays["__meta__"] = np.frombuffer(blob, dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, **arrays), what="checkpoint")
    return Path(path)


def _metadata(path: Path, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """The JSON document of a checkpoint's archive, removed from ``arrays``."""
    if "__meta__" not in arrays:
        names = ", ".join(sorted(arrays)[:6]) + (", ..." if len(arrays) > 6 else "")
        raise CheckpointError(f"{path}: an .npz archive without gpudnn metadata (arrays: {names or 'none'}), "
                              "not a gpudnn checkpoint")
    blob = arrays.pop("__meta__")
    if blob.dtype != np.uint8 or blob.ndim != 1:
        raise CheckpointError(f"{path}: damaged gpudnn metadata (an array of {blob.dtype} {blob.shape})")
    try:
        meta = json.loads(blob.tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{path}: damaged gpudnn metadata ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise CheckpointError(f"{path}: an .npz archive with metadata of format {found!r}, not a gpudnn checkpoint")
    version = meta.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version not in READABLE_VERSIONS:
        if isinstance(version, int) and not isinstance(version, bool) and version > VERSION:
            raise CheckpointError(f"{path}: written by a newer gpudnn, checkpoint format version {version}; this "
                                  f"gpudnn reads versions up to {VERSION}: upgrade gpudnn to load it")
        raise CheckpointError(f"{path}: unknown checkpoint format version {version!r} (this gpudnn reads "
                              f"{', '.join(map(str, READABLE_VERSIONS))})")
    return meta


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(meta, arrays) of a verified checkpoint file."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        arrays = read_npz(existing_file(path))
    except ArrayFileError as exc:
        what = str(exc).removeprefix(f"{path}: ")
        raise CheckpointError(f"{path}: not a readable gpudnn checkpoint: {what}") from None
    meta = _metadata(path, arrays)
    expected = _checksum(arrays, meta if meta["version"] >= 2 else None)
    if meta.get("checksum") != expected:
        raise CheckpointError(f"{path} failed its checksum: the file was altered or damaged")
    return meta, arrays


def _restore(path: str | os.PathLike, meta: dict[str, Any], arrays: dict[str, np.ndarray], model: Sequential | None,
             optimizer: Optimizer | None, restore_rng: bool, with_optimizer: bool
             ) -> tuple[Sequential, Optimizer | None]:
    """Model (given or rebuilt) and optimizer with the checkpoint's state loaded into them."""
    weights = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    if model is None:
        try:
            model = Sequential.from_config(meta["model"])
            model.set_frozen(meta.get("frozen", []))
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: cannot rebuild the saved model: {exc}") from None
    elif model.config() != meta["model"]:
        raise CheckpointError(f"{path} holds another architecture: {meta['model']} (the model given is "
                              f"{model.config()})")
    elif model.frozen_parameter_names() != meta.get("frozen", []):
        raise CheckpointError(f"{path} was saved with frozen parameters {meta.get('frozen', [])}, the model given "
                              f"has {model.frozen_parameter_names()}")
    model.load_state_dict(weights)
    if optimizer is None and with_optimizer:
        optimizer = optimizer_from_checkpoint(meta, model)
        if optimizer is None:
            raise CheckpointError(f"{path} holds no optimizer state")
    if optimizer is not None:
        state = meta.get("optimizer")
        if state is None:
            raise CheckpointError(f"{path} holds no optimizer state")
        if state["type"] != type(optimizer).__name__:
            raise CheckpointError(f"{path} holds {state['type']} state, not {type(optimizer).__name__}")
        state = {**state, "buffers": {k[len("optim/"):]: v for k, v in arrays.items() if k.startswith("optim/")}}
        optimizer.load_state_dict(state)
    if restore_rng and meta.get("rng"):
        model.backend.rng.bit_generator.state = meta["rng"]
    return model, optimizer


def load_checkpoint(path: str | os.PathLike, model: Sequential | None = None, optimizer: Optimizer | None = None,
                    *, restore_rng: bool = True, with_optimizer: bool = False) -> Checkpoint:
    """Load a checkpoint into ``model`` (or a model rebuilt from the saved architecture on the
    current backend) and ``optimizer``; restores the backend's random generator state too.

    with_optimizer: when no ``optimizer`` is given, rebuild the saved one (type and
    hyper-parameters) for the model and load its state, as ``Checkpoint.optimizer``.
    """
    meta, arrays = read_checkpoint(path)
    try:
        model, optimizer = _restore(path, meta, arrays, model, optimizer, restore_rng, with_optimizer)
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise CheckpointError(f"{path}: its contents do not fit ({type(exc).__name__}: {exc})") from None
    return Checkpoint(model=model, epoch=meta.get("epoch"), optimizer=optimizer, meta=meta)


def optimizer_from_checkpoint(meta: dict[str, Any], model: Sequential) -> Optimizer | None:
    """A fresh optimizer of the saved type and hyper-parameters for ``model`` (state not loaded)."""
    state = meta.get("optimizer")
    if state is None:
        return None
    cls = Optimizer.registry.get(state["type"])
    if cls is None:
        raise CheckpointError(f"unknown optimizer type {state['type']!r} in checkpoint")
    return cls.from_hyper(model.parameters(), state["hyper"])
