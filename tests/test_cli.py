"""The command line: `gpudnn info`, and bad requests ending in one line on stderr with exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support import HAVE_GPU


def gpudnn(*args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"} | env
    return subprocess.run([sys.executable, "-m", "gpudnn", *args], capture_output=True, text=True,
                          env=full_env, timeout=300)


def test_info_reports_backend_reason_and_versions():
    out = gpudnn("info", GPUDNN_BACKEND="auto")
    assert out.returncode == 0, out.stderr
    for key in ("backend", "why", "numpy", "numba", "numba-cuda", "cupy"):
        assert any(line.split()[0] == key for line in out.stdout.splitlines() if line.strip()), key
    if HAVE_GPU:
        assert "compute capability" in out.stdout and "CUDA driver" in out.stdout


@pytest.mark.skipif(HAVE_GPU, reason="a usable GPU is present, so the cupy backend works")
def test_cupy_backend_unavailable_is_one_line_exit_2():
    out = gpudnn("info", GPUDNN_BACKEND="cupy")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpudnn: error: backend 'cupy' is unavailable:")
    assert "Traceback" not in out.stderr


def test_bad_backend_option_is_a_usage_error():
    out = gpudnn("--backend", "tpu", "info")
    assert out.returncode == 2 and "invalid choice" in out.stderr and "Traceback" not in out.stderr


def test_default_train_save_evaluate_predict_and_plot(tmp_path):
    import json

    import numpy as np

    ckpt, curves, metrics = tmp_path / "digits.npz", tmp_path / "curves.png", tmp_path / "m.json"
    out = gpudnn("--backend", "numpy", "train", "--save", str(ckpt), "--plot", str(curves),
                 "--metrics-json", str(metrics), "--quiet")
    assert out.returncode == 0, out.stderr
    summary = json.loads(metrics.read_text())
    assert summary["test_accuracy"] >= 0.95 and summary["backend"] == "numpy"
    assert f"test accuracy {summary['test_accuracy']:.4f}" in out.stdout
    assert curves.stat().st_size > 10_000 and curves.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = gpudnn("evaluate", "--model", str(ckpt))
    assert again.returncode == 0, again.stderr
    assert f"test accuracy {summary['test_accuracy']:.4f}" in again.stdout
    from gpudnn.data import load_dataset

    data = load_dataset("digits", seed=0)
    np.savez(tmp_path / "samples.npz", X=data.X_test[:20])
    pred = gpudnn("predict", "--model", str(ckpt), "--input", str(tmp_path / "samples.npz"))
    assert pred.returncode == 0, pred.stderr
    predicted = np.array(pred.stdout.split(), dtype=int)
    assert predicted.shape == (20,) and (predicted == data.y_test[:20]).mean() >= 0.8


def test_resume_continues_from_the_saved_epoch(tmp_path):
    ckpt = tmp_path / "c.npz"
    first = gpudnn("--backend", "numpy", "train", "--epochs", "2", "--save", str(ckpt), "--quiet")
    assert first.returncode == 0, first.stderr
    resumed = gpudnn("--backend", "numpy", "train", "--epochs", "4", "--resume", str(ckpt), "--save", str(ckpt))
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stderr and "epoch 3/4" in resumed.stderr and "epoch 1/4" not in resumed.stderr


@pytest.mark.parametrize("args,message", [
    (["train", "--dataset", "nope"], "unknown dataset 'nope'"),
    (["train", "--hidden", "12,x"], "argument --hidden: must be comma-separated"),
    (["train", "--optimizer", "lbfgs"], "argument --optimizer: invalid choice: 'lbfgs'"),
    (["train", "--epochs", "0"], "must be a positive integer"),
    (["evaluate", "--model", "missing.npz"], "does not exist"),
    (["predict", "--model", "missing.npz", "--input", "x.csv"], "does not exist"),
    (["train", "--activation", "swishy"], "activation must be one of"),
])
def test_bad_requests_are_one_line(args, message, tmp_path):
    out = gpudnn(*args)
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_pca_and_autoencoder_commands(tmp_path):
    out = gpudnn("--backend", "numpy", "pca", "--dataset", "digits", "--components", "2", "--plot",
                 str(tmp_path / "pca.png"))
    assert out.returncode == 0, out.stderr
    assert "explained variance ratio" in out.stdout and (tmp_path / "pca.png").stat().st_size > 10_000
    out = gpudnn("--backend", "numpy", "autoencoder", "--latent", "2", "--epochs", "5", "--quiet", "--plot",
                 str(tmp_path / "ae.png"))
    assert out.returncode == 0, out.stderr
    assert "autoencoder" in out.stdout and (tmp_path / "ae_reconstructions.png").is_file()


def test_bench_smoke_run_writes_json(tmp_path):
    import json

    out = gpudnn("bench", "mlp", "--quick", "--json", str(tmp_path / "b.json"))
    assert out.returncode == 0, out.stderr
    assert "gemm_floor_ratio" in out.stdout
    result = json.loads((tmp_path / "b.json").read_text())["results"]["bench_mlp"]
    assert result["rows"][0]["launches_per_step"] == 8  # 3 forward, 1 loss, 3 backward, 1 optimizer
