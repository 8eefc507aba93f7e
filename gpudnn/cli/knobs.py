"""Optimizer and learning-rate schedule settings of `gpudnn train`: each flag maps to a constructor argument
of the library's optimizer, and a flag the chosen optimizer has no use for is refused."""

from __future__ import annotations

import argparse
import inspect
from typing import Any

from ..optim import Constant, Cosine, Optimizer, Schedule, StepDecay, WarmUp
from .usage import UsageError

# Optimizer constructor argument -> its flag, in the order the help lists them.
KNOBS = {"momentum": "--momentum", "nesterov": "--nesterov", "dampening": "--dampening", "betas": "--betas",
         "eps": "--eps", "alpha": "--alpha", "centered": "--centered", "max_grad_norm": "--max-grad-norm"}
SCHEDULES = ("constant", "step", "cosine")


def beta_pair(text: str) -> list[float]:
    """argparse type: "0.9,0.999" -> [0.9, 0.999]."""
    try:
        betas = [float(part) for part in text.split(",")]
    except ValueError:
        betas = []
    if len(betas) != 2:
        raise argparse.ArgumentTypeError(f"must be two numbers like 0.9,0.999, got {text!r}")
    return betas


def accepted_knobs(optimizer_type: type[Optimizer]) -> list[str]:
    """The KNOBS that ``optimizer_type``'s constructor (or the Optimizer base) takes."""
    names = set(inspect.signature(optimizer_type.__init__).parameters)
    names |= set(inspect.signature(Optimizer.__init__).parameters)
    return [knob for knob in KNOBS if knob in names]


def optimizer_settings(optimizer_type: type[Optimizer], given: dict[str, Any]) -> dict[str, Any]:
    """The constructor arguments for the knobs given (None: not given); a knob the optimizer lacks is a
    UsageError naming the flag and the ones it takes."""
    chosen = {knob: value for knob, value in given.items() if value is not None}
    accepted = accepted_knobs(optimizer_type)
    for knob in chosen:
        if knob not in accepted:
            name = optimizer_type.__name__.lower()
            raise UsageError(f"{KNOBS[knob]} is not a setting of --optimizer {name} (it takes "
                             f"{', '.join(KNOBS[k] for k in accepted)})")
    if "betas" in chosen:
        chosen["betas"] = tuple(chosen["betas"])
    return chosen


def check_resumed_settings(optimizer: Optimizer, given: dict[str, Any]) -> None:
    """On --resume the checkpoint's optimizer settings hold: a knob given with another value is refused."""
    hyper = optimizer.hyper()
    for knob, value in given.items():
        if value is None:
            continue
        saved = hyper.get(knob)
        same = list(saved) == list(value) if knob == "betas" and saved is not None else saved == value
        if not same:
            raise UsageError(f"{KNOBS[knob]} {value} differs from the resumed checkpoint's {saved}: --resume keeps "
                             f"the saved optimizer settings")


def build_schedule(name: str, *, warmup: float, epochs: int, step_every: float | None,
                   step_gamma: float) -> Schedule | None:
    """The learning-rate multiplier of ``--schedule`` over ``epochs`` (None for a constant rate): a linear
    warm-up over ``warmup`` epochs (fractions allowed) first, then the schedule over the epochs left."""
    if name not in SCHEDULES:
        raise UsageError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {name!r}")
    if warmup >= epochs and warmup > 0:
        raise UsageError(f"--warmup {warmup} must be shorter than the {epochs} epochs of training")
    if name != "step" and step_every is not None:
        raise UsageError("--step-every is a setting of --schedule step")
    rest = epochs - warmup
    if name == "constant":
        schedule: Schedule = Constant()
    elif name == "step":
        schedule = StepDecay(step_every if step_every is not None else max(1.0, rest // 3), step_gamma)
    else:
        schedule = Cosine(rest)
    if warmup > 0:
        return WarmUp(warmup, then=schedule)
    return None if name == "constant" else schedule
