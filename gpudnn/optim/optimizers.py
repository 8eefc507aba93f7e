"""Optimizers: one fused in-place kernel launch updates every parameter per step.

The parameters are packed into a flat arena (see parameter.pack); optimizer state lives in
flat buffers of the same length. Regularization, applied inside that same kernel:

    g = s * grad + l2 * p + l1 * sign(p)        (s: global-norm clipping scale, 1 if off)
    p = p * (1 - lr * weight_decay)             (decoupled weight decay)

and then the optimizer's own rule (see the kernels' docstrings, which follow PyTorch). The
penalty added to the reported loss is ``l1 * sum|p| + (l2 / 2) * sum p^2`` over all
parameters (biases included, like PyTorch's weight_decay); decoupled weight decay adds none.
``sums`` gives in one pass over the arena what a training step reads back: the squared gradient
norm and the penalty's two sums.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from .. import checks
from ..nn.parameter import Arena, Parameter, pack
from ..registry import Registered


def _nonneg(name: str, value: Any, *, upper: float | None = None, upper_open: bool = False) -> float:
    return checks.real(name, value, low=0, high=upper, high_open=upper_open)


class Optimizer(Registered, family="optimizer"):
    """Base: arena, regularization, clipping, state (de)serialisation. Frozen parameters
    (``trainable = False`` when the optimizer is built) are left out of the arena, its state and its
    penalty. Every public subclass is in
    ``Optimizer.registry`` by class name (checkpoints store it; the CLI takes it in lower case)."""

    buffers: tuple[str, ...] = ()

    def __init__(self, params: Iterable[Parameter], lr: float, *, l1: float = 0.0, l2: float = 0.0,
                 weight_decay: float = 0.0, max_grad_norm: float | None = None) -> None:
        params = list(params)
        trainable = [p for p in params if getattr(p, "trainable", True)]
        if params and not trainable:
            raise ValueError("every parameter given is frozen: nothing to optimise (unfreeze a layer first)")
        self.arena: Arena = pack(trainable)
        self.backend = self.arena.params[0].backend
        self.lr = _nonneg("lr", lr)
        self.l1, self.l2 = _nonneg("l1", l1), _nonneg("l2", l2)
        self.weight_decay = _nonneg("weight_decay", weight_decay)
        if max_grad_norm is not None:
            max_grad_norm = checks.real("max_grad_norm", max_grad_norm, low=0, low_open=True)
        self.max_grad_norm = max_grad_norm
        self.step_count = 0
        self.state = {name: self.backend.zeros(self.arena.data.shape, self.arena.data.dtype)
                      for name in self.active_buffers()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.hyper().items())
        return f"{type(self).__name__}({args})"

    @classmethod
    def from_hyper(cls, params: Iterable[Parameter], hyper: dict[str, Any]) -> Optimizer:
        """A fresh optimizer over ``params`` with the settings of ``hyper()`` (as saved in JSON)."""
        hyper = dict(hyper)
        if "betas" in hyper:
            hyper["betas"] = tuple(hyper["betas"])
        return cls(params, **hyper)

    @property
    def params(self) -> list[Parameter]:
        return self.arena.params

    def active_buffers(self) -> tuple[str, ...]:
        return self.buffers

    def hyper(self) -> dict[str, Any]:
        return {"lr": self.lr, "l1": self.l1, "l2": self.l2, "weight_decay": self.weight_decay,
                "max_grad_norm": self.max_grad_norm}

    def zero_grad(self) -> None:
        for p in self.arena.params:
            p.zero_grad()

    def grad_norm(self) -> float:
        """Global L2 norm of all gradients (summed in float64; a host sync)."""
        return math.sqrt(float(self.sums(with_penalty=False)[1]))

    @property
    def has_penalty(self) -> bool:
        """Whether an L1 or L2 penalty is on."""
        return bool(self.l1 or self.l2)

    def sums(self, loss: Any = None, out: Any = None, *, with_penalty: bool | None = None) -> Any:
        """``[loss, sum grad^2, sum |p|, sum p^2]`` over the arena as a (4,) float64 backend array (``out``
        when given), in one fused pass (kernels.arena); ``loss``: a 0-d backend array (0 when None). The
        parameter sums are computed when ``with_penalty`` (default: when L1 or L2 is on), else 0."""
        self.arena.write_pending_zeros()
        with_param = self.has_penalty if with_penalty is None else with_penalty
        return self.backend.arena_sums(self.arena.data, self.arena.grad, loss, out, with_param=with_param)

    def penalty_of(self, abs_sum: Any, square_sum: Any) -> Any:
        """``l1 * abs_sum + (l2 / 2) * square_sum``: the penalty from the sums of ``sums()`` (host numbers or
        0-d backend arrays)."""
        return self.l1 * abs_sum + 0.5 * self.l2 * square_sum

    def step(self, grad_scale: float = 1.0, grad_norm: float | None = None) -> None:
        """Apply one update to every parameter (one fused launch).

        grad_scale: the gradient applied is ``grad_scale`` times the arena's (e.g. 1/size after a
        data-parallel sum over size ranks), multiplied inside the fused update, not in a pass of its
        own; clipping by ``max_grad_norm`` measures the scaled gradient.
        grad_norm: the arena's gradient norm when the caller has read it already (fit does, in the
        step's one host sync); otherwise clipping reads it back here.
        """
        self.arena.write_pending_zeros()
        scale = checks.real("grad_scale", grad_scale, low=0, low_open=True)
        if self.max_grad_norm is not None:
            norm = (self.grad_norm() if grad_norm is None else grad_norm) * scale
            if norm > self.max_grad_norm:
                scale *= self.max_grad_norm / (norm + 1e-6)
        self.step_count += 1
        self._update(scale)

    def _update(self, grad_scale: float) -> None:
        raise NotImplementedError

    def _regularization(self, grad_scale: float) -> dict[str, float]:
        return {"l1": self.l1, "l2": self.l2, "weight_decay": self.weight_decay, "grad_scale": grad_scale}

    def penalty(self) -> Any:
        """``l1 * sum|p| + (l2 / 2) * sum p^2`` as a 0-d float64 backend array, the sums in float64 from one
        fused pass (``sums``); the Python float 0.0 when both are off (no work at all)."""
        if not self.has_penalty:
            return 0.0
        s = self.sums()
        return self.penalty_of(s[2], s[3])

    def state_dict(self) -> dict[str, Any]:
        """Hyper-parameters, step count and state buffers (host NumPy copies)."""
        return {"type": type(self).__name__, "hyper": self.hyper(), "step": self.step_count,
                "param_names": [p.name for p in self.arena.params],
                "buffers": {k: self.backend.to_numpy(v).copy() for k, v in self.state.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("type") != type(self).__name__:
            raise ValueError(f"optimizer state is for {state.get('type')}, not {type(self).__name__}")
        names = [p.name for p in self.arena.params]
        if list(state.get("param_names", [])) != names:
            raise ValueError("optimizer state was saved for other parameters "
                             f"({state.get('param_names')} vs {names})")
        buffers = state.get("buffers", {})
        if set(buffers) != set(self.state):
            raise ValueError(f"optimizer state buffers {sorted(buffers)} do not match {sorted(self.state)}")
        for k, v in buffers.items():
            if tuple(np.shape(v)) != tuple(self.state[k].shape):
                raise ValueError(f"optimizer buffer {k} has shape {np.shape(v)}, expected {self.state[k].shape}")
        for k, v in buffers.items():
            self.state[k][...] = self.backend.asarray(v, dtype=self.state[k].dtype)
        for k, v in state.get("hyper", {}).items():
            setattr(self, k, v)
        self.step_count = int(state.get("step", 0))


class SGD(Optimizer):
    """SGD with optional momentum (PyTorch's definition, incl. dampening and Nesterov)."""

    def __init__(self, params: Iterable[Parameter], lr: float = 0.01, momentum: float = 0.0, *,
                 dampening: float = 0.0, nesterov: bool = False, **regularization: Any) -> None:
        self.momentum = _nonneg("momentum", momentum)
        self.dampening = _nonneg("dampening", dampening, upper=1.0)
        self.nesterov = checks.flag("nesterov", nesterov)
        if self.nesterov and (self.momentum == 0 or self.dampening != 0):
            raise ValueError("nesterov needs momentum > 0 and dampening == 0")
        super().__init__(params, lr, **regularization)

    def active_buffers(self) -> tuple[str, ...]:
        return ("momentum_buf",) if self.momentum else ()

    def hyper(self) -> dict[str, Any]:
        return {**super().hyper(), "momentum": self.momentum, "dampening": self.dampening, "nesterov": self.nesterov}

    def _update(self, grad_scale: float) -> None:
        a = self.arena
        self.backend.sgd_(a.data, a.grad, self.state.get("momentum_buf"), lr=self.lr, momentum=self.momentum,
                          dampening=self.dampening, nesterov=self.nesterov, first_step=self.step_count == 1,
                          **self._regularization(grad_scale))


class Adam(Optimizer):
    """Adam with bias correction (PyTorch's definition); ``weight_decay`` here is decoupled (AdamW)."""

    buffers = ("exp_avg", "exp_avg_sq")

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, **regularization: Any) -> None:
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = (_nonneg("beta1", betas[0], upper=1.0, upper_open=True),
                      _nonneg("beta2", betas[1], upper=1.0, upper_open=True))
        self.eps = checks.real("eps", eps, low=0, low_open=True)
        super().__init__(params, lr, **regularization)

    def hyper(self) -> dict[str, Any]:
        return {**super().hyper(), "betas": list(self.betas), "eps": self.eps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.betas = tuple(self.betas)

    def _update(self, grad_scale: float) -> None:
        a = self.arena
        self.backend.adam_(a.data, a.grad, self.state["exp_avg"], self.state["exp_avg_sq"], lr=self.lr,
                           beta1=self.betas[0], beta2=self.betas[1], eps=self.eps, step=self.step_count,
                           **self._regularization(grad_scale))


class AdamW(Adam):
    """Adam with decoupled weight decay (default 1e-2, as PyTorch's AdamW)."""

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, **regularization: Any) -> None:
        super().__init__(params, lr, betas, eps, weight_decay=weight_decay, **regularization)


class RMSprop(Optimizer):
    """RMSprop with optional momentum and the centered variant (PyTorch's definition)."""

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, *,
                 momentum: float = 0.0, centered: bool = False, **regularization: Any) -> None:
        self.alpha = _nonneg("alpha", alpha, upper=1.0, upper_open=True)
        self.eps = checks.real("eps", eps, low=0, low_open=True)
        self.momentum = _nonneg("momentum", momentum)
        self.centered = checks.flag("centered", centered)
        super().__init__(params, lr, **regularization)

    def active_buffers(self) -> tuple[str, ...]:
        return ("square_avg",) + (("momentum_buf",) if self.momentum else ()) + (("grad_avg",) if self.centered else ())

    def hyper(self) -> dict[str, Any]:
        return {**super().hyper(), "alpha": self.alpha, "eps": self.eps, "momentum": self.momentum,
                "centered": self.centered}

    def _update(self, grad_scale: float) -> None:
        a = self.arena
        self.backend.rmsprop_(a.data, a.grad, self.state["square_avg"], lr=self.lr, alpha=self.alpha, eps=self.eps,
                              momentum=self.momentum, centered=self.centered,
                              momentum_buf=self.state.get("momentum_buf"), grad_avg=self.state.get("grad_avg"),
                              **self._regularization(grad_scale))

