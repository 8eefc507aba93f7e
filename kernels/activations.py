"""Activation functions: integer codes, scalar maths shared by the CPU and CUDA kernels, and
vectorised NumPy/CuPy references.

Every scalar function takes ``(value, alpha)`` so a kernel can call any of them the same way;
``alpha`` is only read by leaky_relu. The scalar set is written once and compiled per dtype, by
``numba.njit`` for the CPU kernels and by ``numba.cuda.jit(device=True)`` for the CUDA kernels.
Its constants carry the dtype, so float32 kernels compute in float32 (a float64 literal would
promote every operation). Float32 CPU kernels use polynomial exp/tanh/erfc that LLVM vectorises
(``math.exp`` is a scalar libm call; softplus's log1p still is one); float64 and CUDA use the math
library, except the float64 CUDA softplus, which takes log1p through log (``_log1p_unit``: libdevice's
log1p needs more registers than the elementwise kernels' 32).

The formulas are the numerically stable ones, finite and accurate for any finite input (tested
to |z| = 1e30 in float32 and float64, with no overflow warnings), and NaN propagates through every
function and derivative (identity's derivative excepted: it never reads z):

    sigmoid(z) = 1/(1+e) for z >= 0, e/(1+e) otherwise, with e = exp(-|z|);  sigmoid' = e/(1+e)^2
    tanh'(z)   = 4e/(1+e)^2 with e = exp(-2|z|)
    gelu(z)    = z/2 * erfc(-z/sqrt 2)              (exact GELU, no cancellation for z < 0)
    gelu_tanh(z) = z * sigmoid(2u), u = sqrt(2/pi) (z + 0.044715 z^3)   (= z/2 (1 + tanh u))
    silu(z)    = z * sigmoid(z);  softplus(z) = max(z, 0) + log1p(exp(-|z|))
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

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
# gelu_tanh's cubic and gelu's Gaussian are evaluated at z clamped to +-1e3: beyond, sigmoid(2u) is
# exactly 0 or 1 and exp(-z^2/2) exactly 0 even in float64, and the clamp keeps z^3 and z^2 finite
# for any finite z (no inf * 0).
_CLAMP = 1e3


def activation_code(activation: str | int | None) -> int:
    """The integer code of an activation given by name (None means identity)."""
    if activation is None:
        return IDENTITY
    if isinstance(activation, (int, np.integer)) and not isinstance(activation, bool):
        if int(activation) in NAMES:
            return int(activation)
        raise ValueError(f"activation code must be one of {sorted(NAMES)}, got {activation}")
    if isinstance(activation, str) and activation.lower() in CODES:
        return CODES[activation.lower()]
    raise ValueError(f"activation must be one of {sorted(CODES)}, got {activation!r}")


def _log1p_unit(u):
    """log(1 + u) for a float64 ``u`` in [0, 1] through log, for the float64 CUDA softplus (libdevice's
    log1p alone needs more registers than an elementwise kernel's 32).

    w = 1 + u rounds; w - 1 is then exact (w is in [1, 2]) and (u - (w - 1)) / w restores the rounding
    error to first order. 1/w is taken as 2 - w, off by (w - 1)**2 / w, which moves the result by under
    an ulp. Exact for u = 0 and below the rounding of 1 + u (w = 1 gives u); NaN propagates.
    """
    w = 1.0 + u
    return math.log(w) + (u - (w - 1.0)) * (2.0 - w)


def _build(jit: Callable, dtype: Any, exp: Callable, tanh: Callable, erfc: Callable, log1p: Callable = math.log1p):
    """Compile the scalar maths for ``dtype`` with ``jit``: (forward, derivative from z, derivative from y).

    ``exp``/``tanh``/``erfc`` are the elementary functions to use (libm's, or the float32 polynomials);
    ``log1p``, softplus's, is only called on [0, 1].
    """
    F = np.dtype(dtype).type
    ZERO, HALF, ONE, TWO, FOUR = F(0), F(0.5), F(1), F(2), F(4)
    INV_SQRT_2, INV_SQRT_2PI = F(_INV_SQRT_2), F(_INV_SQRT_2PI)
    # 2u = 2 sqrt(2/pi) (z + c z^3) and its derivative 2 sqrt(2/pi) (1 + 3c z^2)
    U1, U3, DU3 = F(2 * _SQRT_2_OVER_PI), F(2 * _SQRT_2_OVER_PI * _GELU_C), F(6 * _SQRT_2_OVER_PI * _GELU_C)
    CLAMP = F(_CLAMP)

    @jit
    def sigmoid_and_slope(z):
        """(sigmoid(z), sigmoid'(z)) without overflow; NaN in, NaN out."""
        e = exp(-abs(z))
        r = ONE / (ONE + e)
        return (r if z >= ZERO else e * r), e * r * r

    @jit
    def clamp(z):
        return math.copysign(CLAMP, z) if abs(z) > CLAMP else z  # NaN passes

    @jit
    def gelu_tanh_parts(z):
        """(z clamped to +-CLAMP, 2u at the clamped z)."""
        zc = clamp(z)
        return zc, (U1 + U3 * zc * zc) * zc

    @jit
    def identity(z, alpha):
        return z

    @jit
    def relu(z, alpha):
        return ZERO if z <= ZERO else z  # NaN falls through to the else branch and propagates

    @jit
    def leaky_relu(z, alpha):
        return alpha * z if z <= ZERO else z

    @jit
    def sigmoid(z, alpha):
        return sigmoid_and_slope(z)[0]

    @jit
    def tanh_(z, alpha):
        return tanh(z)

    @jit
    def gelu_tanh(z, alpha):
        return z * sigmoid_and_slope(gelu_tanh_parts(z)[1])[0]

    @jit
    def gelu(z, alpha):
        return HALF * z * erfc(-z * INV_SQRT_2)

    @jit
    def silu(z, alpha):
        return z * sigmoid_and_slope(z)[0]

    @jit
    def softplus(z, alpha):
        return (z if z > ZERO else ZERO) + log1p(exp(-abs(z)))

    @jit
    def d_identity(z, alpha):
        return ONE

    @jit
    def d_relu(z, alpha):
        return ONE if z > ZERO else (ZERO if z <= ZERO else z)  # NaN stays NaN

    @jit
    def d_leaky_relu(z, alpha):
        return ONE if z > ZERO else (alpha if z <= ZERO else z)

    @jit
    def d_sigmoid(z, alpha):
        return sigmoid_and_slope(z)[1]

    @jit
    def d_tanh(z, alpha):
        e = exp(-TWO * abs(z))
        r = ONE / (ONE + e)
        return FOUR * e * r * r

    @jit
    def d_gelu_tanh(z, alpha):
        zc, u2 = gelu_tanh_parts(z)
        s, ds = sigmoid_and_slope(u2)
        return s + zc * ds * (U1 + DU3 * zc * zc)

    @jit
    def d_gelu(z, alpha):
        zc = clamp(z)
        return HALF * erfc(-z * INV_SQRT_2) + zc * INV_SQRT_2PI * exp(-HALF * zc * zc)

    @jit
    def d_silu(z, alpha):
        s, ds = sigmoid_and_slope(z)
        return s + z * ds

    @jit
    def d_softplus(z, alpha):
        return sigmoid_and_slope(z)[0]

    @jit
    def dy_sigmoid(y, alpha):
        return y * (ONE - y)

    @jit
    def dy_tanh(y, alpha):
        return ONE - y * y

    forward = {IDENTITY: identity, RELU: relu, LEAKY_RELU: leaky_relu, SIGMOID: sigmoid, TANH: tanh_,
               GELU_TANH: gelu_tanh, GELU: gelu, SILU: silu, SOFTPLUS: softplus}
    grad_z = {IDENTITY: d_identity, RELU: d_relu, LEAKY_RELU: d_leaky_relu, SIGMOID: d_sigmoid, TANH: d_tanh,
              GELU_TANH: d_gelu_tanh, GELU: d_gelu, SILU: d_silu, SOFTPLUS: d_softplus}
    grad_y = {IDENTITY: d_identity, RELU: d_relu, SIGMOID: dy_sigmoid, TANH: dy_tanh}
    return forward, grad_z, grad_y


@functools.cache
def fast_f32() -> tuple[Callable, Callable, Callable]:
    """(exp, tanh, erfc) for float32 as Numba functions that vectorise inside loops.

    exp is fast_math.exp32 (relative error < 1e-6). tanh: Cephes' odd polynomial for |z| < 0.625,
    else (1 - e)/(1 + e) with e = exp(-2|z|); relative error < 3e-7. erfc: the Chebyshev fit
    t exp(-x^2 + P(t)), t = 1/(1 + |x|/2) (Numerical Recipes' erfcc, fit error 1.2e-7), reflected
    as 2 - erfc(-x) for x < 0; relative error < 2e-6 for |x| < 4, < 1e-5 out to the float32
    underflow (the rounding of x^2 inside exp dominates there).
    """
    from numba import njit

    from .fast_math import exp32

    F = np.float32
    ZERO, HALF, ONE, TWO, SMALL = F(0), F(0.5), F(1), F(2), F(0.625)
    T0, T1, T2, T3, T4 = (F(v) for v in (-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2,
                                        1.33314422036e-1, -3.33332819422e-1))
    E0, E1, E2, E3, E4, E5, E6, E7, E8, E9 = (F(v) for v in (
        0.17087277, -0.82215223, 1.48851587, -1.13520398, 0.27886807,
        -0.18628806, 0.09678418, 0.37409196, 1.00002368, -1.26551223))

    @njit(inline="always")
    def tanh32(z):
        a = abs(z)
        z2 = z * z
        small = ((((T0 * z2 + T1) * z2 + T2) * z2 + T3) * z2 + T4) * z2 * z + z
        e = exp32(-TWO * a)
        large = math.copysign((ONE - e) / (ONE + e), z)
        return small if a < SMALL else large  # NaN takes the exp branch and stays NaN

    @njit(inline="always")
    def erfc32(x):
        a = abs(x)
        t = ONE / (ONE + HALF * a)
        p = ((((((((E0 * t + E1) * t + E2) * t + E3) * t + E4) * t + E5) * t + E6) * t + E7) * t + E8) * t + E9
        r = t * exp32(p - a * a)
        return r if x >= ZERO else TWO - r  # NaN: r is NaN and so is 2 - r

    return exp32, tanh32, erfc32


@functools.cache
def cpu_scalars(dtype: Any = np.float64):
    """Scalar activation maths for ``dtype`` compiled for the CPU kernels (numba.njit, always inlined)."""
    from numba import njit

    elementary = fast_f32() if np.dtype(dtype) == np.float32 else (math.exp, math.tanh, math.erfc)
    return _build(njit(inline="always"), dtype, *elementary)


@functools.cache
def cuda_scalars(dtype: Any = np.float64):
    """Scalar activation maths for ``dtype`` as numba.cuda device functions.

    Under the simulator they stay plain Python functions: the simulator would run them as they
    are anyway, but its device-function wrapper takes a global lock on every call, which
    serialises the simulated threads.
    """
    from ._common import device_jit

    jit = device_jit()
    log1p = jit(_log1p_unit) if np.dtype(dtype) == np.float64 else math.log1p
    return _build(jit, dtype, math.exp, math.tanh, math.erfc, log1p)


# --------------------------------------------------------------------------- references


def forward_ref(z: Any, code: int, alpha: float = 0.0) -> Any:
    """y = f(z), elementwise, in the array module and dtype of ``z`` (NumPy or CuPy)."""
    from ._common import array_module

    xp = array_module(z)
    if code == IDENTITY:
        y = z.copy()
    elif code == RELU:
        y = xp.where(z <= 0, 0, z)
    elif code == LEAKY_RELU:
        y = xp.where(z <= 0, alpha * z, z)
    elif code == SIGMOID:
        y = _sigmoid_ref(z)[0]
    elif code == TANH:
        y = xp.tanh(z)
    elif code == GELU_TANH:
        y = z * _sigmoid_ref(_gelu_tanh_ref(z)[1])[0]
    elif code == GELU:
        y = 0.5 * z * _erfc(xp, -z * _INV_SQRT_2)
    elif code == SILU:
        y = z * _sigmoid_ref(z)[0]
    elif code == SOFTPLUS:
        y = xp.maximum(z, 0) + xp.log1p(xp.exp(-xp.abs(z)))
    else:
        raise ValueError(f"unknown activation code {code}")
    return y.astype(z.dtype, copy=False)


def grad_ref(z: Any, code: int, alpha: float = 0.0) -> Any:
    """f'(z), elementwise, from the pre-activation z (NaN in, NaN out)."""
    from ._common import array_module

    xp = array_module(z)
    if code == IDENTITY:
        g = xp.ones_like(z)
    elif code == RELU:
        g = xp.where(z > 0, 1, xp.where(z <= 0, 0, z))
    elif code == LEAKY_RELU:
        g = xp.where(z > 0, 1, xp.where(z <= 0, alpha, z))
    elif code == SIGMOID:
        g = _sigmoid_ref(z)[1]
    elif code == TANH:
        e = xp.exp(-2 * xp.abs(z))
        g = 4 * e / (1 + e) ** 2
    elif code == GELU_TANH:
        zc, u2 = _gelu_tanh_ref(z)
        s, ds = _sigmoid_ref(u2)
        g = s + zc * ds * 2 * _SQRT_2_OVER_PI * (1 + 3 * _GELU_C * zc * zc)
    elif code == GELU:
        zc = xp.clip(z, -_CLAMP, _CLAMP)
        g = 0.5 * _erfc(xp, -z * _INV_SQRT_2) + zc * _INV_SQRT_2PI * xp.exp(-0.5 * zc * zc)
    elif code == SILU:
        s, ds = _sigmoid_ref(z)
        g = s + z * ds
    elif code == SOFTPLUS:
        g = _sigmoid_ref(z)[0]
    else:
        raise ValueError(f"unknown activation code {code}")
    return g.astype(z.dtype, copy=False)


def grad_from_output_ref(y: Any, code: int) -> Any:
    """f'(z) written in terms of y = f(z), for the codes in FROM_OUTPUT."""
    from ._common import array_module

    if code == IDENTITY:
        g = array_module(y).ones_like(y)
    elif code == RELU:
        g = grad_ref(y, RELU)
    elif code == SIGMOID:
        g = y * (1 - y)
    elif code == TANH:
        g = 1 - y * y
    else:
        raise ValueError(f"the derivative of {NAMES.get(code, code)} cannot be taken from its output")
    return g.astype(y.dtype, copy=False)


def _sigmoid_ref(z: Any) -> tuple[Any, Any]:
    """(sigmoid(z), sigmoid'(z)) through e = exp(-|z|), which never overflows."""
    from ._common import array_module

    xp = array_module(z)
    e = xp.exp(-xp.abs(z))
    r = 1 / (1 + e)
    return xp.where(z >= 0, r, e * r), e * r * r


def _gelu_tanh_ref(z: Any) -> tuple[Any, Any]:
    """(z clamped to +-1e3, 2u = 2 sqrt(2/pi) (zc + 0.044715 zc^3))."""
    from ._common import array_module

    zc = array_module(z).clip(z, -_CLAMP, _CLAMP)
    return zc, 2 * _SQRT_2_OVER_PI * (zc + _GELU_C * zc * zc * zc)


def _erfc(xp: Any, x: Any) -> Any:
    if xp is np:
        return np.vectorize(math.erfc, otypes=[x.dtype])(x) if x.size else x.copy()
    import cupyx.scipy.special

    return cupyx.scipy.special.erfc(x)
