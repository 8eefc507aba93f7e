"""Fused kernels: arrays in, arrays out.

One op family per module. Each op comes three ways with one signature:
``<op>_ref`` (plain NumPy/CuPy maths, the oracle), ``<op>_cpu`` (Numba ``@njit``) and
``<op>_cuda`` (``numba.cuda``, launched on CuPy's current stream). In-place ops end in ``_``.
Kernel modules import numba (never a GPU query) and are themselves imported only when an op is
first used; Numba compiles each kernel on its first call. CUDA kernels refer to ``numba.cuda`` as
a module global, which is what lets numba-cuda's simulator run them. Never imports ``gpudnn``.
"""
