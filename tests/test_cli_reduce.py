"""`gpudnn train --reduce`, the optimizer settings on the command line and `gpudnn compare`."""

from __future__ import annotations

import json

import numpy as np
import pytest

import gpudnn as gd
import gpudnn.cli.train as train_module
from gpudnn.cli import main
from gpudnn.cli.compare import steps_to_loss
from gpudnn.data import load_dataset, standardize
from gpudnn.nn.mlp import build_mlp
from tests.test_cli import gpudnn

SMALL = ["--hidden", "32", "--quiet"]


@pytest.fixture(autouse=True)
def numpy_backend():
    with gd.use_backend("numpy") as b:
        yield b


def _digits_split(seed=0, val_fraction=0.1):
    """The rows `gpudnn train` fits on and validates with, computed the documented way."""
    data = load_dataset("digits", seed=seed)
    X_train, X_test, _, _ = standardize(data.X_train, data.X_test)
    split = np.random.default_rng(seed).permutation(len(X_train))
    n_val = int(round(len(X_train) * val_fraction))
    return data, X_train, X_test, split[n_val:], split[:n_val]


def _weights(path):
    return gd.load_checkpoint(path, restore_rng=False).model.state_dict()


@pytest.mark.parametrize("spec,extra,least", [
    ("pca:20", ["--epochs", "8"], 0.95),
    ("autoencoder:20", ["--epochs", "8", "--reduce-epochs", "30"], 0.93),
])
def test_reduced_training_then_evaluate_and_predict_from_raw_features(spec, extra, least, tmp_path):
    ckpt, metrics = tmp_path / "m.npz", tmp_path / "m.json"
    out = gpudnn("--backend", "numpy", "train", "--reduce", spec, *extra, "--save", str(ckpt),
                 "--metrics-json", str(metrics), "--quiet")
    assert out.returncode == 0, out.stderr
    summary = json.loads(metrics.read_text())
    assert summary["test_accuracy"] >= least, summary["test_accuracy"]
    line = next(x for x in out.stdout.splitlines() if x.startswith(f"reduction {spec}: 64 -> 20 features"))
    assert ("of the variance explained" if spec.startswith("pca") else "reconstruction MSE") in line
    again = gpudnn("evaluate", "--model", str(ckpt))
    assert again.returncode == 0, again.stderr
    assert f"test accuracy {summary['test_accuracy']:.4f}" in again.stdout
    data = load_dataset("digits", seed=0)
    np.savez(tmp_path / "raw.npz", X=data.X_test)  # raw features: the checkpoint standardises and reduces
    pred = gpudnn("predict", "--model", str(ckpt), "--input", str(tmp_path / "raw.npz"))
    assert pred.returncode == 0, pred.stderr
    predicted = np.array(pred.stdout.split(), dtype=int)
    assert (predicted == data.y_test).mean() == pytest.approx(summary["test_accuracy"], abs=1e-12)
    first = _weights(ckpt)["0.W"]
    assert first.shape == (64, 20 if spec.startswith("pca") else 128)


def test_the_reduction_sees_only_training_rows(tmp_path, monkeypatch):
    """The test split, shifted far away, reaches the reduction in no argument; the PCA stage in the checkpoint is
    the PCA of the rows the classifier is fitted on."""
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((150, 6)) * [1, 2, 3, 4, 5, 6]).astype(np.float32)
    y = rng.integers(0, 3, 150)
    path = tmp_path / "shifted.npz"
    np.savez(path, X=X, y=y, X_test=X[:40] + 1000, y_test=y[:40])
    seen = []
    real = train_module.fit_reduction

    def spy(reduction, X_fit, X_val, **kwargs):
        seen.extend(a for a in (X_fit, X_val) if a is not None)
        return real(reduction, X_fit, X_val, **kwargs)

    monkeypatch.setattr(train_module, "fit_reduction", spy)
    ckpt = tmp_path / "r.npz"
    assert main(["train", "--dataset", str(path), "--reduce", "pca:3", "--epochs", "1", "--save", str(ckpt),
                 *SMALL]) == 0
    X_std, X_test_std, _, _ = standardize(X, X[:40] + 1000)
    assert len(seen) == 2 and all(np.abs(a).max() < 10 for a in seen) and np.abs(X_test_std).min() > 100
    split = np.random.default_rng(0).permutation(150)
    fit_rows = X_std[split[15:]]
    np.testing.assert_array_equal(np.sort(seen[0], axis=0), np.sort(fit_rows, axis=0))
    layer = gd.pca_layer(gd.PCA(3, random_state=0).fit(fit_rows), dtype=np.float32)
    saved = _weights(ckpt)
    np.testing.assert_array_equal(saved["0.W"], layer.W.data)
    np.testing.assert_array_equal(saved["0.b"], layer.b.data)


def test_sgd_flags_follow_the_librarys_trajectory(tmp_path):
    ckpt, metrics = tmp_path / "s.npz", tmp_path / "s.json"
    assert main(["train", "--optimizer", "sgd", "--momentum", "0.9", "--nesterov", "--lr", "0.01", "--epochs", "2",
                 "--save", str(ckpt), "--metrics-json", str(metrics), *SMALL]) == 0
    cli = json.loads(metrics.read_text())
    assert cli["optimizer"]["momentum"] == 0.9 and cli["optimizer"]["nesterov"] is True
    meta = gd.load_checkpoint(ckpt, restore_rng=False).meta["optimizer"]
    assert meta["type"] == "SGD" and meta["hyper"]["momentum"] == 0.9 and meta["hyper"]["nesterov"] is True

    def library(**settings):
        gd.seed(0)
        data, X_train, _, fit_idx, val_idx = _digits_split()
        model = build_mlp(64, [32], 10, "relu", 0.1)
        history = gd.fit(model, gd.SoftmaxCrossEntropy(), gd.SGD(model.parameters(), lr=0.01, **settings),
                         X_train[fit_idx], data.y_train[fit_idx], epochs=2, batch_size=64,
                         validation_data=(X_train[val_idx], data.y_train[val_idx]), progress=False)
        return history, model.state_dict()

    history, weights = library(momentum=0.9, nesterov=True)
    for theirs, ours in zip(history.epochs, cli["history"]):
        assert {k: v for k, v in theirs.items() if k != "epoch_time"} == \
            {k: v for k, v in ours.items() if k != "epoch_time"}
    for name, value in _weights(ckpt).items():
        np.testing.assert_array_equal(value, weights[name], err_msg=name)
    _, plain = library(momentum=0.9)  # without --nesterov the weights differ: the flag is what made them equal
    assert not np.array_equal(plain["0.W"], weights["0.W"])


def test_a_knob_the_optimizer_lacks_is_refused_in_one_line():
    out = gpudnn("train", "--optimizer", "adam", "--momentum", "0.9")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [
        "gpudnn: error: --momentum is not a setting of --optimizer adam (it takes --betas, --eps, --max-grad-norm)"]


@pytest.mark.parametrize("args,message", [
    (["--optimizer", "rmsprop", "--betas", "0.9,0.99"], "--betas is not a setting of --optimizer rmsprop"),
    (["--optimizer", "sgd", "--alpha", "0.9"], "--alpha is not a setting of --optimizer sgd"),
    (["--optimizer", "adamw", "--centered"], "--centered is not a setting of --optimizer adamw"),
    (["--optimizer", "adam", "--nesterov"], "--nesterov is not a setting of --optimizer adam"),
    (["--optimizer", "sgd", "--nesterov"], "nesterov needs momentum > 0"),
    (["--betas", "0.9"], "argument --betas: must be two numbers"),
    (["--reduce", "pca:abc"], "argument --reduce: pca needs a size"),
    (["--reduce", "autoencoder:0.5"], "the size of autoencoder must be a positive integer"),
    (["--reduce", "tsne:2"], "argument --reduce: must be one of none, pca:K"),
    (["--reduce", "pca:65"], "at most 64 components"),
    (["--fine-tune", "2"], "--fine-tune unfreezes a reduction: it needs --reduce"),
    (["--schedule", "cosine", "--warmup", "3", "--epochs", "3"], "--warmup 3.0 must be shorter than the 3 epochs"),
    (["--step-every", "2"], "--step-every is a setting of --schedule step"),
])
def test_bad_settings_are_one_line_exit_2(args, message, capsys):
    try:
        code = main(["train", *args, *SMALL])
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def _interrupted_after(epochs, monkeypatch):
    """Make `train` stop like a Ctrl-C right after saving the checkpoint of epoch ``epochs``."""
    real = train_module.save_checkpoint

    def save(path, model, opt, *, epoch, **kwargs):
        real(path, model, opt, epoch=epoch, **kwargs)
        if epoch == epochs:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "save_checkpoint", save)


def test_resume_restores_settings_and_schedule_bit_identically(tmp_path, monkeypatch):
    args = ["--optimizer", "sgd", "--momentum", "0.9", "--nesterov", "--max-grad-norm", "1.0", "--lr", "0.05",
            "--schedule", "cosine", "--warmup", "0.5", "--epochs", "3", *SMALL]
    straight, resumed = tmp_path / "a.npz", tmp_path / "b.npz"
    assert main(["train", *args, "--save", str(straight), "--metrics-json", str(tmp_path / "a.json")]) == 0
    with monkeypatch.context() as m:
        _interrupted_after(1, m)
        assert main(["train", *args, "--save", str(resumed)]) == 130
    assert main(["train", "--resume", str(resumed), "--momentum", "0.5", "--epochs", "3", *SMALL]) == 2
    assert main(["train", "--resume", str(resumed), "--schedule", "step", "--epochs", "3", *SMALL]) == 2
    assert main(["train", "--resume", str(resumed), "--save", str(resumed), "--epochs", "3",
                 "--metrics-json", str(tmp_path / "b.json"), *SMALL]) == 0
    for name, value in _weights(straight).items():
        np.testing.assert_array_equal(_weights(resumed)[name], value, err_msg=name)
    lrs = [[e["lr"] for e in json.loads((tmp_path / f).read_text())["history"]] for f in ("a.json", "b.json")]
    assert lrs[0] == lrs[1] and lrs[0][0] < 0.05 and lrs[0][-1] < lrs[0][0]  # the scaled rates, end of each epoch
    hyper = gd.load_checkpoint(resumed, restore_rng=False).meta["optimizer"]["hyper"]
    assert hyper["momentum"] == 0.9 and hyper["nesterov"] is True and hyper["max_grad_norm"] == 1.0


def test_fine_tuning_unfreezes_the_encoder_and_resumes_across_it(tmp_path, monkeypatch):
    args = ["--reduce", "autoencoder:8", "--reduce-hidden", "16", "--reduce-epochs", "3", "--epochs", "2",
            "--fine-tune", "2", *SMALL]
    straight, resumed = tmp_path / "a.npz", tmp_path / "b.npz"
    assert main(["train", *args, "--save", str(straight)]) == 0
    with monkeypatch.context() as m:
        _interrupted_after(2, m)
        assert main(["train", *args, "--save", str(resumed)]) == 130
    middle = gd.load_checkpoint(resumed, restore_rng=False)
    assert middle.meta["frozen"] == ["0.W", "0.b", "1.W", "1.b"] and middle.extra["plan"]["fine_tune"] == 2
    pretrained = middle.model.state_dict()
    assert main(["train", "--resume", str(resumed), "--save", str(resumed), "--epochs", "2", *SMALL]) == 0
    final = gd.load_checkpoint(resumed, restore_rng=False)
    assert final.meta["frozen"] == [] and final.epoch == 4
    assert not np.array_equal(final.model.state_dict()["0.W"], pretrained["0.W"])  # fine-tuned
    for name, value in _weights(straight).items():
        np.testing.assert_array_equal(final.model.state_dict()[name], value, err_msg=name)


def test_steps_to_loss_counts_whole_epochs():
    history = [{"loss": 1.0}, {"loss": 0.3}, {"loss": 0.09}, {"loss": 0.2}]
    assert steps_to_loss(history, 0.1, 23) == 69 and steps_to_loss(history, 0.3, 5) == 10
    assert steps_to_loss(history, 0.01, 5) is None


def test_compare_writes_plot_table_and_every_run(tmp_path):
    png, table, metrics = tmp_path / "c.png", tmp_path / "c.md", tmp_path / "c.json"
    out = gpudnn("--backend", "numpy", "compare", "--optimizers", "sgd,adam", "--reduce", "none,pca:8", "--epochs",
                 "2", "--hidden", "32", "--plot", str(png), "--table", str(table), "--metrics-json", str(metrics),
                 "--quiet")
    assert out.returncode == 0, out.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    rows = [line for line in table.read_text().splitlines() if line.startswith("| ") and "---" not in line]
    assert [r.split(" | ")[0] for r in rows[1:]] == ["| sgd, none", "| adam, none", "| sgd, pca:8", "| adam, pca:8"]
    result = json.loads(metrics.read_text())
    assert [r["run"] for r in result["rows"]] == ["sgd, none", "adam, none", "sgd, pca:8", "adam, pca:8"]
    for row, run in zip(result["rows"], result["runs"]):
        assert row["test_accuracy"] == run["test_accuracy"]
        assert row["steps_to_target"] == steps_to_loss(run["history"], 0.1, run["steps_per_epoch"])
    assert result["runs"][2]["model"]["layers"][0]["out_features"] == 8
    # the same seed: the compare run is the run `train` makes with the same settings
    assert main(["train", "--optimizer", "adam", "--lr", "0.001", "--epochs", "2", "--metrics-json",
                 str(tmp_path / "t.json"), *SMALL]) == 0
    alone = json.loads((tmp_path / "t.json").read_text())
    assert [e["loss"] for e in alone["history"]] == [e["loss"] for e in result["runs"][1]["history"]]
    assert alone["test_accuracy"] == result["runs"][1]["test_accuracy"]
