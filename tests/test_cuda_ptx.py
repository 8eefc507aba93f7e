"""Every CUDA kernel through NVIDIA's compiler (NVVM + ptxas, no GPU): `gpudnn bench ptx` compiles each
(kernel, signature) the backend can launch for sm_90 and sm_80, and each must hold the rules of
gpudnn.kernels.ptx (register bounds per kernel kind, no spills, no 64-bit integer division, no
float64 arithmetic in float32 kernels beyond the named accumulations, hardware atomics only, entry
parameters as the lean launch packs them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from gpudnn.kernels import ptx

from tests.support import SIMULATOR

ROOT = Path(__file__).resolve().parents[1]


def _toolchain_reason() -> str | None:
    try:
        ptx.toolchain()
    except ptx.ToolchainMissing as exc:
        return str(exc)
    return None


needs_toolchain = pytest.mark.skipif(_toolchain_reason() is not None, reason=f"{_toolchain_reason()}")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """The JSON of `gpudnn bench ptx` for sm_90 and sm_80, run without the simulator (real numba.cuda)."""
    out = tmp_path_factory.mktemp("ptx")
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "gpudnn", "bench", "ptx", "--arch", "sm_90,sm_80", "--json",
                           str(out / "cuda_kernels_{arch}.json")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=1200)
    print(done.stderr[-2000:])
    files = {arch: out / f"cuda_kernels_{arch.replace('_', '')}.json" for arch in ("sm_90", "sm_80")}
    found = {arch: json.loads(path.read_text()) for arch, path in files.items() if path.is_file()}
    assert set(found) == {"sm_90", "sm_80"}, done.stderr[-4000:]
    found["_rc"] = done.returncode  # type: ignore[assignment]
    return found


@needs_toolchain
@pytest.mark.parametrize("arch", ["sm_90", "sm_80"])
def test_every_kernel_holds_the_rules(compiled: dict, arch: str) -> None:
    result = compiled[arch]
    kernels = result["kernels"]
    print(f"{arch}: {len(kernels)} CUDA kernels compiled by NVVM and assembled by ptxas "
          f"(CUDA {result['toolchain']['cuda']})")
    ops = {k["kernel"].split("/")[0] for k in kernels}
    assert {"bias_act", "bias_act_backward", "softmax_xent", "softmax", "bce_logits", "mse", "dropout", "layer_norm",
            "layer_norm_backward", "batch_norm", "batch_norm_backward", "sgd_", "adam_", "rmsprop_",
            "arena_sums"} <= ops
    assert len(kernels) >= 150  # every op x dtype x activation x variant: 170 today
    assert result["problems"] == {}
    for k in kernels:
        assert k["parameters"] == "", k["label"]  # entry parameters as the lean launch packs them
        assert k["spill_stores"] == 0 and k["spill_loads"] == 0, k["label"]
        bound = result["register_bounds"][k["kind"]][k["variant"].split()[0]]
        assert k["registers"] <= bound == k["register_bound"], k["label"]
        assert k["counts"]["div_rem_64"] == 0, k["label"]
        assert k["counts"]["cas"] == 0, k["label"]
        if k["kind"] == "row":  # a (2, threads) shared array for the block reductions
            assert k["shared_bytes"] >= 2 * 32 * 4, k["label"]
    assert compiled["_rc"] == 0


@needs_toolchain
def test_float32_elementwise_and_optimizer_kernels_fit_32_registers(compiled: dict) -> None:
    for arch in ("sm_90", "sm_80"):
        assert compiled[arch]["register_bounds"]["elementwise"]["float32"] == 32
        assert compiled[arch]["register_bounds"]["optimizer"]["float32"] == 32
        fp32 = [k for k in compiled[arch]["kernels"] if k["variant"].startswith("float32")]
        assert all(k["registers"] <= 32 for k in fp32 if k["kind"] in ("elementwise", "optimizer", "reduction"))
        fp32_bias_act = [k for k in fp32 if k["kernel"] == "bias_act/kernel"]
        assert len(fp32_bias_act) == 18  # 9 activations, with and without z kept
        for k in fp32_bias_act:
            assert k["counts"]["div_rem_64"] == 0 and k["counts"]["f64_ops"] == 0, k["label"]
            assert k["registers"] <= 32, k["label"]


@needs_toolchain
def test_float64_elementwise_and_optimizer_kernels_fit_32_registers(compiled: dict) -> None:
    for arch in ("sm_90", "sm_80"):
        assert compiled[arch]["register_bounds"]["elementwise"]["float64"] == 32
        assert compiled[arch]["register_bounds"]["optimizer"]["float64"] == 32
        fp64 = [k for k in compiled[arch]["kernels"]
                if k["variant"].startswith("float64") and k["kind"] in ("elementwise", "optimizer")]
        assert {k["variant"] for k in fp64} >= {"float64 softplus", "float64 softplus keep_z",
                                                 "float64 plain momentum", "float64 centered momentum"}
        assert all(k["registers"] <= 32 and not k["spill_stores"] and not k["spill_loads"] for k in fp64), arch


def test_the_counts_see_what_the_rules_forbid() -> None:
    sample = """
        div.s64 %rd5, %rd3, %rd4;
        rem.u64 %rd6, %rd3, %rd4;
        div.rn.f32 %f1, %f2, %f3;
        fma.rn.f64 %fd1, %fd2, %fd3, %fd4;
        cvt.f64.f32 %fd5, %f1;
        atom.global.cas.b32 %r1, [%rd1], %r2, %r3;
        red.global.add.f32 [%rd2], %f1;
        ld.global.v4.f32 {%f1, %f2, %f3, %f4}, [%rd7];
    """
    counts = ptx.instruction_counts(sample)
    assert ptx.static_shared_bytes(".visible .shared .align 4 .b8 _cudapy_smem_1[256];\n"
                                   ".shared .align 8 .b8 _cudapy_smem_2[1024];\n") == 1280
    assert counts["div_rem_64"] == 2
    assert counts["f64_ops"] == 1 and counts["cvt_f64"] == 1
    assert counts["atomics"] == 2 and counts["cas"] == 1
    assert counts["vector_loads"] == 1
    report = ptx.KernelReport("bias_act/kernel float32 relu (...)", "bias_act/kernel", "float32 relu", "elementwise",
                              "sm_90", 33, 0, 0, 4, 4, counts, "the entry declares parameters of [8, 4] bytes")
    found = " | ".join(ptx.problems(report))
    for expected in ("33 registers, above the 32 of float32 elementwise", "spills", "2 64-bit integer",
                     "compare-and-swap", "2 float64", "the entry declares"):
        assert expected in found
    clean = report._replace(registers=32, spill_stores=0, spill_loads=0,
                            counts={name: 0 for name in counts}, parameters="")
    assert ptx.problems(clean) == []


def test_entry_parameters_are_read_from_the_ptx() -> None:
    entry = """.visible .entry _ZN6kernelE(
        .param .u64 _ZN6kernelE_param_0,
        .param .f32 _ZN6kernelE_param_1,
        .param .u8 _ZN6kernelE_param_2,
        .param .f64 _ZN6kernelE_param_3
    )
    {
        ld.param.u64 %rd1, [_ZN6kernelE_param_0];
    }"""
    assert ptx.entry_parameter_bytes(entry) == [8, 4, 1, 8]
    with pytest.raises(ValueError, match="no kernel entry"):
        ptx.entry_parameter_bytes(".func helper(.param .u64 a) {}")


def test_arch_names() -> None:
    assert ptx.parse_arch("sm_90") == (9, 0) and ptx.parse_arch("80") == (8, 0) and ptx.parse_arch("8.6") == (8, 6)
    assert ptx.arch((9, 0)) == "sm_90"
    with pytest.raises(ValueError, match="sm_90"):
        ptx.parse_arch("hopper")


@pytest.mark.skipif(not SIMULATOR, reason="checks the refusal under the simulator")
def test_recording_needs_the_real_numba_cuda() -> None:
    from gpudnn.kernels import _common

    with pytest.raises(RuntimeError, match="NUMBA_ENABLE_CUDASIM"):
        with _common.recording_launches():
            pass


def test_committed_results_hold_the_rules() -> None:
    for arch in ("sm_90", "sm_80"):
        path = ROOT / "benchmarks" / "results" / f"cuda_kernels_{arch.replace('_', '')}.json"
        result = json.loads(path.read_text())
        assert result["arch"] == arch and result["problems"] == {}
        assert all(k["registers"] <= k["register_bound"] for k in result["kernels"])
