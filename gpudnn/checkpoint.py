"""Checkpoints: atomic, pickle-free, versioned and checksummed.

A checkpoint is an ``.npz`` archive of plain arrays: ``model/<param>`` and ``optim/<buffer>``,
plus ``__meta__``, a JSON document (format, version, model architecture, frozen parameters, optimizer
hyper-parameters and step, loss, epoch, random-generator state, user extras) whose
``checksum`` is a SHA-256 over every array's name, dtype, shape and bytes.

Writing goes to a temporary file in the same folder, is flushed and fsync'ed, then renamed
over the target (and the folder fsync'ed): a crash at any moment leaves either the old or the
new checkpoint, never a torn one. Loading uses ``allow_pickle=False`` and verifies format,
version and checksum before touching the model; a truncated or altered file raises
CheckpointError.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .nn.sequential import Sequential
from .optim.optimizers import Optimizer

FORMAT = "gpudnn-checkpoint"
VERSION = 1


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


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def atomic_write(path: str | os.PathLike, write: Any) -> None:
    """Call ``write(fileobj)`` on a temporary file next to ``path``, fsync it, then rename it over ``path``."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot save to {path}: folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


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
    meta["checksum"] = _checksum(arrays)
    try:
        blob = json.dumps(meta, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"checkpoint extras must be JSON-serialisable finite values: {exc}") from None
    arrays["__meta__"] = np.frombuffer(blob, dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, **arrays))
    return Path(path)


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(meta, arrays) of a verified checkpoint file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise CheckpointError(f"{path} is not a readable gpudnn checkpoint (truncated or corrupted?): {exc}") from None
    if "__meta__" not in arrays:
        raise CheckpointError(f"{path} is not a gpudnn checkpoint (no metadata)")
    try:
        meta = json.loads(arrays.pop("__meta__").tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} has corrupted metadata: {exc}") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a gpudnn checkpoint (format {meta.get('format')!r})")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {meta.get('version')}, this gpudnn reads {VERSION}")
    if meta.get("checksum") != _checksum(arrays):
        raise CheckpointError(f"{path} failed its checksum: the file was altered or damaged")
    return meta, arrays


def load_checkpoint(path: str | os.PathLike, model: Sequential | None = None, optimizer: Optimizer | None = None,
                    *, restore_rng: bool = True, with_optimizer: bool = False) -> Checkpoint:
    """Load a checkpoint into ``model`` (or a model rebuilt from the saved architecture on the
    current backend) and ``optimizer``; restores the backend's random generator state too.

    with_optimizer: when no ``optimizer`` is given, rebuild the saved one (type and
    hyper-parameters) for the model and load its state, as ``Checkpoint.optimizer``.
    """
    meta, arrays = read_checkpoint(path)
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
