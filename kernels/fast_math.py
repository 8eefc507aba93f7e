"""Vectorisable float32 maths for the Numba CPU kernels.

Numba turns ``math.exp``/``np.exp`` into a scalar libm call, which stops LLVM from vectorising
the loop around it. ``exp32`` is the same function written as plain arithmetic (Cody-Waite range
reduction, a degree-7 polynomial, exponent bits built with integer ops), so a loop calling it
compiles to SIMD code: ~8x faster than ``math.exp`` on an AVX-512 CPU.

Use it on float32 only. Float64 kernels keep ``math.exp``: the polynomial is fitted to float32
precision, and a float64 version would not be faster than libm by enough to matter.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

_F = np.float32
_I = np.int32

_LOG2E = _F(1.4426950408889634)
# ln 2 split in two (Cody-Waite): _LN2_HI has few mantissa bits, so n * _LN2_HI is exact for |n| < 2**9.
_LN2_HI = _F(0.693359375)
_LN2_LO = _F(-2.12194440e-4)
_HALF = _F(0.5)
_ONE = _F(1.0)
# Cephes expf minimax coefficients for exp(r) on |r| <= ln(2)/2 (relative error ~1 ulp).
_P0 = _F(1.9875691500e-4)
_P1 = _F(1.3981999507e-3)
_P2 = _F(8.3334519073e-3)
_P3 = _F(4.1665795894e-2)
_P4 = _F(1.6666665459e-1)
_P5 = _F(5.0000001201e-1)
# Beyond these exp(x) is +inf (ln of the largest float32) or rounds to 0 (below half the smallest subnormal).
_OVERFLOW = _F(88.72283935546875)
_UNDERFLOW = _F(-103.97)
_N_MIN = _F(-150.0)  # clamps keep the float -> int conversion defined; results there are replaced anyway
_N_MAX = _F(128.0)
_BIAS = _I(127)
_MANTISSA_BITS = _I(23)
_N_BITS_MIN = _I(-125)
_INF = _F(np.inf)
_ZERO = _F(0.0)


@intrinsic
def _float32_from_bits(typingctx, bits):
    """Reinterpret the low 32 bits of an integer as a float32 (a bit cast LLVM vectorises).

    Takes any integer type because Numba widens int32 arithmetic to int64.
    """
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        low = builder.trunc(args[0], ir.IntType(32)) if bits.bitwidth > 32 else args[0]
        return builder.bitcast(low, ir.FloatType())

    return types.float32(bits), codegen


@intrinsic
def _bits_from_float32(typingctx, x):
    """The bits of a float32 as an int32."""
    if x != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(types.float32), codegen


@njit(inline="always")
def exp32(x):
    """exp(x) for a float32 ``x``, returning float32; vectorises inside Numba loops.

    Relative error below 1e-6 where the result is a normal float32 (x in [-87.33, 88.72]); below
    that it decays through the subnormals to exactly 0 (absolute error < 1.2e-38); +inf above
    88.7228; NaN propagates. Safe under the kernels' reassociating fast-math flags: the scaling
    by 2**n goes through integer bit arithmetic, which no float flag can reorder.
    """
    nf = np.floor(x * _LOG2E + _HALF)
    nf = min(max(nf, _N_MIN), _N_MAX)
    r = (x - nf * _LN2_HI) - nf * _LN2_LO
    r2 = r * r
    p = ((((((_P0 * r + _P1) * r + _P2) * r + _P3) * r + _P4) * r + _P5) * r2 + r) + _ONE
    # p * 2**n: add n to p's exponent field (p in [0.7, 1.5], so that stays normal for n >= -125);
    # below, add only -125 there and multiply by the rest, which rounds into the subnormals.
    n = _I(nf)
    n_bits = max(n, _N_BITS_MIN)
    y = _float32_from_bits(_bits_from_float32(p) + (n_bits << _MANTISSA_BITS))
    y = y * _float32_from_bits((n - n_bits + _BIAS) << _MANTISSA_BITS)
    y = _ZERO if x < _UNDERFLOW else y
    y = _INF if x > _OVERFLOW else y
    return y if x == x else x  # NaN: the bit arithmetic above would have turned it into a number
