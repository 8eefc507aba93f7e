"""Activation functions: integer codes, scalar maths shared by the CPU and CUDA kernels, and
vectorised NumPy/CuPy references.

Every scalar function takes ``(value, alpha)`` so a kernel can call any of them the same way;
``alpha`` is only read by leaky_relu. The scalar set is written once and compiled twice, by
``numba.njit`` for the CPU kernels and by ``numba.cuda.jit(device=True)`` for the CUDA kernels.
The formulas are the numerically stable ones: no overflow for |z| up to 1e4 in float32.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

IDENTITY, RELU, LEAKY_RELU, SIGMOID, TANH, GELU_TANH, GELU, SILU, SOFTPLUS = range(9)

CODES: dict[str, int] = {
    "identity": IDENTITY,
    "linear": IDENTITY,
    "relu": RELU,
    "leaky_relu": LEAKY_RELU,
    "sigmoid": SIGMOID,
    "tanh": TANH,
    "gelu_tanh": GELU_TANH,
    "gelu": GELU,  # exact, with erf (PyTorch's default)
    "silu": SILU,
    "swish": SILU,
    "softplus": SOFTPLUS,
}
NAMES: dict[int, str] = {code: name for name, code in CODES.items() if name not in ("linear", "swish")}

# Activations whose derivative is a function of the output y = f(z): backward then needs only y,
# so the forward pass need not keep the pre-activation z.
FROM_OUTPUT = frozenset({IDENTITY, RELU, SIGMOID, TANH})

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_GELU_C = 0.044715


def activation_code(activation: str | int | None) -> int:
    """The integer code of an activation given by name (None means identity)."""
    if activation is None:
        return IDENTITY
    if isinstance(activation, int) and not isinstance(activation, bool):
        if activation in NAMES:
            return activation
        raise ValueError(f"activation code must be one of {sorted(NAMES)}, got {activation}")
    if isinstance(activation, str) and activation.lower() in CODES:
        return CODES[activation.lower()]
    raise ValueError(f"activation must be one of {sorted(CODES)}, got {activation!r}")


def _build(jit: Callable) -> tuple[dict[int, Any], dict[int, Any], dict[int, Any]]:
    """Compile the scalar maths with ``jit``: (forward, derivative from z, derivative from y)."""

    @jit
    def sigmoid(z, alpha):
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)

    @jit
    def identity(z, alpha):
        return z

    @jit
    def relu(z, alpha):
        return 0.0 if z <= 0 else z  # NaN falls through to the else branch and propagates

    @jit
    def leaky_relu(z, alpha):
        return alpha * z if z <= 0 else z

    @jit
    def tanh(z, alpha):
        return math.tanh(z)

    @jit
    def gelu_tanh(z, alpha):
        return 0.5 * z * (1.0 + math.tanh(_SQRT_2_OVER_PI * (z + _GELU_C * z * z * z)))

    @jit
    def gelu(z, alpha):
        return 0.5 * z * (1.0 + math.erf(z * _INV_SQRT_2))

    @jit
    def silu(z, alpha):
        return z * sigmoid(z, alpha)

    @jit
    def softplus(z, alpha):
        return max(z, 0.0) + math.log1p(math.exp(-abs(z)))

    @jit
    def d_identity(z, alpha):
        return 1.0

    @jit
    def d_relu(z, alpha):
        return 1.0 if z > 0 else 0.0

    @jit
    def d_leaky_relu(z, alpha):
        return 1.0 if z > 0 else alpha

    @jit
    def d_sigmoid(z, alpha):
        s = sigmoid(z, alpha)
        return s * (1.0 - s)

    @jit
    def d_tanh(z, alpha):
        t = math.tanh(z)
        return 1.0 - t * t

    @jit
    def d_gelu_tanh(z, alpha):
        t = math.tanh(_SQRT_2_OVER_PI * (z + _GELU_C * z * z * z))
        return 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_C * z * z)

    @jit
    def d_gelu(z, alpha):
        return 0.5 * (1.0 + math.erf(z * _INV_SQRT_2)) + z * _INV_SQRT_2PI * math.exp(-0.5 * z * z)

    @jit
    def d_silu(z, alpha):
        s = sigmoid(z, alpha)
        return s + z * s * (1.0 - s)

    @jit
    def d_softplus(z, alpha):
        return sigmoid(z, alpha)

    @jit
    def dy_relu(y, alpha):
        return 1.0 if y > 0 else 0.0

    @jit
    def dy_sigmoid(y, alpha):
        return y * (1.0 - y)

    @jit
    def dy_tanh(y, alpha):
        return 1.0 - y * y

    forward = {IDENTITY: identity, RELU: relu, LEAKY_RELU: leaky_relu, SIGMOID: sigmoid, TANH: tanh,
               GELU_TANH: gelu_tanh, GELU: gelu, SILU: silu, SOFTPLUS: softplus}
    grad_z = {IDENTITY: d_identity, RELU: d_relu, LEAKY_RELU: d_leaky_relu, SIGMOID: d_sigmoid, TANH: d_tanh,
              GELU_TANH: d_gelu_tanh, GELU: d_gelu, SILU: d_silu, SOFTPLUS: d_softplus}
    grad_y = {IDENTITY: d_identity, RELU: dy_relu, SIGMOID: dy_sigmoid, TANH: dy_tanh}
    return forward, grad_z, grad_y


@functools.cache
def cpu_scalars():
    """Scalar activation maths compiled for the CPU kernels (numba.njit, always inlined)."""
    from numba import njit

    return _build(njit(inline="always", fastmath=False, error_model="numpy"))


@functools.cache
def cuda_scalars():
    """Scalar activation maths compiled as numba.cuda device functions.

    Under the simulator they stay plain Python functions: the simulator would run them as they
    are anyway, but its device-function wrapper takes a global lock on every call, which
    serialises the simulated threads.
    """
    from ._common import cuda, simulator_enabled

    return _build((lambda f: f) if simulator_enabled() else cuda().jit(device=True))


# --------------------------------------------------------------------------- references


def forward_ref(z: Any, code: int, alpha: float = 0.0) -> Any:
    """y = f(z), elementwise, in the array module of ``z`` (NumPy or CuPy)."""
    from ._common import array_module

    xp = array_module(z)
    if code == IDENTITY:
        return z.copy()
    if code == RELU:
        return xp.where(z <= 0, 0, z).astype(z.dtype)
    if code == LEAKY_RELU:
        return xp.where(z <= 0, alpha * z, z).astype(z.dtype)
    if code == SIGMOID:
        return _sigmoid_ref(z)
    if code == TANH:
        return xp.tanh(z)
    if code == GELU_TANH:
        return (0.5 * z * (1 + xp.tanh(_SQRT_2_OVER_PI * (z + _GELU_C * z**3)))).astype(z.dtype)
    if code == GELU:
        return (0.5 * z * (1 + _erf(xp, z * _INV_SQRT_2))).astype(z.dtype)
    if code == SILU:
        return z * _sigmoid_ref(z)
    if code == SOFTPLUS:
        return xp.maximum(z, 0) + xp.log1p(xp.exp(-xp.abs(z)))
    raise ValueError(f"unknown activation code {code}")


def grad_ref(z: Any, code: int, alpha: float = 0.0) -> Any:
    """f'(z), elementwise, from the pre-activation z."""
    from ._common import array_module

    xp = array_module(z)
    if code == IDENTITY:
        return xp.ones_like(z)
    if code == RELU:
        return (z > 0).astype(z.dtype)
    if code == LEAKY_RELU:
        return xp.where(z > 0, 1, alpha).astype(z.dtype)
    if code == SIGMOID:
        s = _sigmoid_ref(z)
        return s * (1 - s)
    if code == TANH:
        return 1 - xp.tanh(z) ** 2
    if code == GELU_TANH:
        t = xp.tanh(_SQRT_2_OVER_PI * (z + _GELU_C * z**3))
        return (0.5 * (1 + t) + 0.5 * z * (1 - t * t) * _SQRT_2_OVER_PI * (1 + 3 * _GELU_C * z * z)).astype(z.dtype)
    if code == GELU:
        return (0.5 * (1 + _erf(xp, z * _INV_SQRT_2)) + z * _INV_SQRT_2PI * xp.exp(-0.5 * z * z)).astype(z.dtype)
    if code == SILU:
        s = _sigmoid_ref(z)
        return s + z * s * (1 - s)
    if code == SOFTPLUS:
        return _sigmoid_ref(z)
    raise ValueError(f"unknown activation code {code}")


def grad_from_output_ref(y: Any, code: int) -> Any:
    """f'(z) written in terms of y = f(z), for the codes in FROM_OUTPUT."""
    from ._common import array_module

    xp = array_module(y)
    if code == IDENTITY:
        return xp.ones_like(y)
    if code == RELU:
        return (y > 0).astype(y.dtype)
    if code == SIGMOID:
        return y * (1 - y)
    if code == TANH:
        return 1 - y * y
    raise ValueError(f"the derivative of {NAMES.get(code, code)} cannot be taken from its output")


def _sigmoid_ref(z: Any) -> Any:
    from ._common import array_module

    xp = array_module(z)
    e = xp.exp(-xp.abs(z))  # never overflows
    return xp.where(z >= 0, 1 / (1 + e), e / (1 + e)).astype(z.dtype)


def _erf(xp: Any, x: Any) -> Any:
    if xp.__name__ == "numpy":
        import math as _m

        return xp.vectorize(_m.erf, otypes=[x.dtype])(x) if x.size else x.copy()
    import cupyx.scipy.special

    return cupyx.scipy.special.erf(x)
