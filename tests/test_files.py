"""Files at the edges: outputs checked before work starts, a full disk or read-only folder during a save,
stale temporary files, and loaders that say what a refused file is (never NumPy's pickle advice)."""

from __future__ import annotations

import ast
import errno
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import gpudnn as gd
from gpudnn.data import load_dataset, load_features
from gpudnn.files import SaveError, atomic_write, check_output, check_outputs, read_npy, read_npz, remove_stale_temps

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def numpy_backend():
    with gd.use_backend("numpy") as b:
        yield b


def gpudnn_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "gpudnn", "--backend", "numpy", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


def small_model(seed: int = 0) -> tuple[gd.Sequential, gd.Adam]:
    gd.seed(seed)
    model = gd.Sequential(gd.Dense(5, 8, activation="relu"), gd.Dense(8, 3))
    return model, gd.Adam(model.parameters(), lr=1e-2)


# --------------------------------------------------------------------------- outputs checked up front


def test_check_output_accepts_writable_names_and_refuses_the_rest(tmp_path):
    assert check_output("--save", tmp_path / "new.npz") == tmp_path / "new.npz"
    (tmp_path / "old.npz").write_bytes(b"x")
    assert check_output("--save", tmp_path / "old.npz") == tmp_path / "old.npz"  # replaced atomically later
    (tmp_path / "link.npz").symlink_to(tmp_path / "old.npz")
    assert check_output("--save", tmp_path / "link.npz") == tmp_path / "link.npz"
    cases = [
        (tmp_path / "no" / "such" / "ck.npz", f"--save {tmp_path}/no/such/ck.npz: folder {tmp_path}/no/such does "
                                              "not exist"),
        (tmp_path, f"--save {tmp_path}: is a folder, expected a file name"),
        (str(tmp_path) + "/", "expected a file name, got a folder"),
        ("", "expected a file name, got nothing"),
        (tmp_path / "old.npz" / "ck.npz", f"{tmp_path}/old.npz is not a folder"),
        ("/dev/null", "/dev/null: exists and is not a regular file"),
    ]
    for path, message in cases:
        with pytest.raises(ValueError) as info:
            check_output("--save", path)
        assert message in str(info.value) and "\n" not in str(info.value)


def test_check_output_refuses_a_folder_that_cannot_be_written(tmp_path, monkeypatch):
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == tmp_path else real_access(p, mode))
    with pytest.raises(ValueError, match=f"--plot {tmp_path}/c.png: folder {tmp_path} is not writable"):
        check_output("--plot", tmp_path / "c.png")


def test_check_outputs_skips_absent_options_and_refuses_a_shared_file(tmp_path):
    assert check_outputs({"--save": None, "--plot": tmp_path / "a.png"}) == {"--plot": tmp_path / "a.png"}
    with pytest.raises(ValueError, match="--save and --metrics-json name the same file"):
        check_outputs({"--save": tmp_path / "a", "--metrics-json": tmp_path / "b" / ".." / "a"})


@pytest.mark.parametrize("args,message", [
    (["train", "--save", "/no/such/dir/ck.npz"], "--save /no/such/dir/ck.npz: folder /no/such/dir does not exist"),
    (["train", "--plot", "/no/such/dir/c.png"], "--plot /no/such/dir/c.png: folder /no/such/dir does not exist"),
    (["train", "--metrics-json", "/no/such/dir/m.json"], "--metrics-json /no/such/dir/m.json: folder"),
    (["train", "--plot", "curves.txt"], "--plot curves.txt: give a file name ending in an image format"),
    (["train", "--save", "TMP", "--epochs", "1"], "is a folder, expected a file name"),
    (["predict", "--model", "m.npz", "--input", "x.csv", "--output", "/no/such/dir/p.txt"], "--output /no/such"),
    (["pca", "--plot", "/no/such/dir/p.png"], "--plot /no/such/dir/p.png: folder"),
    (["autoencoder", "--plot", "/no/such/dir/a.png"], "--plot /no/such/dir/a.png: folder"),
    (["bench", "--json", "/no/such/dir/b.json"], "--json /no/such/dir/b.json: folder"),
    (["compare", "--plot", "/no/such/dir/c.png"], "--plot /no/such/dir/c.png: folder"),
    (["compare", "--table", "/no/such/dir/t.md"], "--table /no/such/dir/t.md: folder"),
    (["export", "--model", "m.npz", "--onnx", "/no/such/dir/m.onnx"], "--onnx /no/such/dir/m.onnx: folder"),
    (["export", "--model", "m.npz", "--safetensors", "TMP"], "is a folder, expected a file name"),
])
def test_every_writing_command_checks_its_outputs_before_any_work(args, message, tmp_path):
    args = [str(tmp_path) if a == "TMP" else a for a in args]
    out = gpudnn_cli(*args, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == [f"gpudnn: error: {out.stderr.strip().split(': error: ')[1]}"]
    assert message in out.stderr, out.stderr
    assert "epoch 1/" not in out.stderr and not out.stdout  # nothing trained, nothing printed
    assert sorted(os.listdir(tmp_path)) == []  # nothing written


def test_train_save_refuses_to_overwrite_a_file_that_is_not_a_checkpoint(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("a,label\n1,0\n")
    out = gpudnn_cli("train", "--save", str(data))
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert f"--save {data}: refusing to overwrite a file that is not a gpudnn checkpoint (" in out.stderr
    assert "a text file" in out.stderr and "epoch 1/" not in out.stderr
    assert data.read_text() == "a,label\n1,0\n"


# --------------------------------------------------------------------------- a save that cannot be written


def _fail_fsync(code: int):
    def fsync(fd: int) -> None:
        raise OSError(code, os.strerror(code))

    return fsync


@pytest.mark.parametrize("code,cause", [(errno.ENOSPC, "no space left on device"),
                                        (errno.EROFS, "the file system is read-only"),
                                        (errno.EDQUOT, "disk quota exceeded")])
def test_a_failed_save_names_the_path_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch, code, cause):
    model, opt = small_model()
    path = gd.save_checkpoint(tmp_path / "ck.npz", model, opt, epoch=1)
    before = path.read_bytes()
    for p in model.parameters():
        p.data += 1
    monkeypatch.setattr(os, "fsync", _fail_fsync(code))  # the data is written, the flush to disk fails
    with pytest.raises(SaveError) as info:
        gd.save_checkpoint(path, model, opt, epoch=2)
    monkeypatch.undo()
    message = str(info.value)
    assert message == f"cannot save {path}: {cause}; the previous checkpoint at {path} is intact"
    assert info.value.errno == code and isinstance(info.value, OSError)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["ck.npz"]  # no temporary file left
    assert gd.load_checkpoint(path).epoch == 1


def test_a_refused_first_save_says_nothing_was_written(tmp_path, monkeypatch):
    real_open = os.open

    def read_only_folder(path, flags, *args):
        if flags & os.O_CREAT:
            raise OSError(errno.EACCES, "Permission denied")  # what a read-only folder answers (root aside)
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only_folder)
    with pytest.raises(SaveError, match=f"cannot save {tmp_path}/m.json: permission denied; no file was written"):
        atomic_write(tmp_path / "m.json", lambda f: f.write(b"{}"))
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []


def test_plots_are_written_atomically(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib", reason="plots need matplotlib (the plot extra)")
    from gpudnn.cli.plots import training_curves

    history = gd.History(epochs=[{"loss": 1.0, "accuracy": 0.5}, {"loss": 0.5, "accuracy": 0.75}])
    path = training_curves(history, tmp_path / "c.svg")
    before = path.read_bytes()
    assert before.lstrip().startswith(b"<?xml") and b"<svg" in before
    monkeypatch.setattr(os, "fsync", _fail_fsync(errno.ENOSPC))
    with pytest.raises(SaveError, match=f"cannot save {path}: no space left on device; the previous plot at"):
        training_curves(history, path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["c.svg"]


def test_fit_stops_cleanly_when_a_checkpoint_cannot_be_written(tmp_path, monkeypatch):
    import io

    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 5)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    model, opt = small_model()
    path, real_fsync, saved = tmp_path / "ck.npz", os.fsync, []

    def on_epoch_end(epoch: int, metrics: dict) -> None:
        if epoch == 2:  # the disk fills up during the third epoch's save
            monkeypatch.setattr(os, "fsync", _fail_fsync(errno.ENOSPC))
        gd.save_checkpoint(path, model, opt, epoch=epoch + 1)
        saved.append(model.state_dict())

    stream = io.StringIO()
    history = gd.fit(model, gd.SoftmaxCrossEntropy(), opt, X, y, epochs=6, batch_size=16, progress=False,
                     on_epoch_end=on_epoch_end, stream=stream)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert len(history.epochs) == 3 and isinstance(history.stopped_by, SaveError)  # the third epoch is kept
    line = stream.getvalue().strip()
    assert line.startswith(f"training stopped after epoch 3 (loss {history.epochs[2]['loss']:.4f}, accuracy ")
    assert line.endswith(f"cannot save {path}: no space left on device; the previous checkpoint at {path} is intact")
    ckpt = gd.load_checkpoint(path)
    assert ckpt.epoch == 2
    for name, value in saved[-1].items():
        np.testing.assert_array_equal(ckpt.model.state_dict()[name], value)


def _mount_tmpfs_command() -> list[str] | None:
    """A command prefix that runs its arguments with a fresh tmpfs of 192 KiB mounted at $GPUDNN_TMPFS, or None."""
    script = 'mount -t tmpfs -o size=192k tmpfs "$GPUDNN_TMPFS" && exec "$@"'
    for prefix in (["unshare", "--user", "--map-root-user", "--mount"], ["unshare", "--mount"]):
        if shutil.which(prefix[0]) is None:
            continue
        probe = subprocess.run([*prefix, "sh", "-c", script, "sh", "true"], capture_output=True, timeout=30,
                               env={**os.environ, "GPUDNN_TMPFS": "/tmp"})
        if probe.returncode == 0:
            return [*prefix, "sh", "-c", script, "sh"]
    return None


_MOUNT = _mount_tmpfs_command() if sys.platform.startswith("linux") else None


@pytest.mark.skipif(_MOUNT is None, reason="cannot mount a small tmpfs here (no unshare, user namespaces or "
                                           "mount rights); the injected-ENOSPC tests above cover the logic")
def test_train_on_a_full_tmpfs_stops_with_the_previous_checkpoint_intact(tmp_path):
    """A 192 KiB tmpfs holds one checkpoint of this model (118 KiB) but not a second beside it."""
    mount = tmp_path / "small"
    mount.mkdir()
    ck = mount / "ck.npz"
    check = (f"import gpudnn as gd, os; c = gd.load_checkpoint({str(ck)!r}); "
             f"print('loaded epoch', c.epoch, sorted(os.listdir({str(mount)!r})))")
    script = (f'"{sys.executable}" -m gpudnn --backend numpy train --hidden 128 --epochs 3 --quiet '
              f'--save "{ck}"; echo "exit $?"; "{sys.executable}" -c "{check}"')
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"} | {
        "GPUDNN_TMPFS": str(mount), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([*_MOUNT, "sh", "-c", script], capture_output=True, text=True, timeout=300, env=env)
    message = f"cannot save {ck}: no space left on device; the previous checkpoint at {ck} is intact"
    assert "exit 2" in out.stdout, out.stdout + out.stderr
    assert "training stopped after epoch 2 (loss " in out.stderr and message in out.stderr, out.stderr
    assert out.stderr.strip().splitlines()[-1] == f"gpudnn: error: {message}"
    assert "test accuracy" in out.stdout  # the model trained so far is still evaluated and reported
    assert "loaded epoch 1 ['ck.npz']" in out.stdout, out.stdout + out.stderr  # no temporary file left


# --------------------------------------------------------------------------- stale temporary files


def test_a_save_removes_only_its_own_stale_temporary_files(tmp_path):
    old = time.time() - 3600
    own_stale = [tmp_path / ".ck.npz.ab12cd34.tmp", tmp_path / ".ck.npz.k9_x0zq1.tmp"]  # both name styles
    keep = [
        tmp_path / ".ck.npz.fe98dc76.tmp",  # ours but fresh: a save may be under way
        tmp_path / ".other.npz.ab12cd34.tmp",  # another target's
        tmp_path / ".ck.npz.notours.tmp",  # not the pattern
        tmp_path / "ck.npz.ab12cd34.tmp",  # no leading dot
        tmp_path / ".ck.npz.ab12cd34.tmp.bak",
    ]
    for path in own_stale + keep:
        path.write_bytes(b"partial")
    folder = tmp_path / ".ck.npz.00000000.tmp"  # the pattern, but a folder
    folder.mkdir()
    for path in own_stale + keep[1:] + [folder]:
        os.utime(path, (old, old))
    model, _ = small_model()
    gd.save_checkpoint(tmp_path / "ck.npz", model)
    left = set(os.listdir(tmp_path))
    assert left == {"ck.npz", folder.name, *(p.name for p in keep)}
    assert remove_stale_temps(tmp_path / "ck.npz", max_age_s=0) == [keep[0]]


def test_a_killed_save_leaves_temporaries_that_a_later_save_removes(tmp_path):
    """A process killed mid-save leaves its temporary file; once it is stale, the next save removes it."""
    saver = (f"import os, sys; sys.path.insert(0, {str(ROOT)!r}); from gpudnn.files import atomic_write\n"
             "def write(f):\n    f.write(b'x' * 1000)\n    f.flush()\n    print('writing', flush=True)\n"
             "    os.kill(os.getpid(), 9)\n"
             f"atomic_write({str(tmp_path / 'ck.npz')!r}, write)\n")
    out = subprocess.run([sys.executable, "-c", saver], capture_output=True, text=True, timeout=60)
    assert out.returncode == -9 and "writing" in out.stdout
    (temp,) = [p for p in tmp_path.iterdir()]
    assert temp.name.startswith(".ck.npz.") and temp.name.endswith(".tmp")
    atomic_write(tmp_path / "ck.npz", lambda f: f.write(b"new"))
    assert temp.exists()  # fresh: it may belong to a save under way
    os.utime(temp, (time.time() - 3600,) * 2)
    atomic_write(tmp_path / "ck.npz", lambda f: f.write(b"newer"))
    assert os.listdir(tmp_path) == ["ck.npz"] and (tmp_path / "ck.npz").read_bytes() == b"newer"


# --------------------------------------------------------------------------- loaders say what a file is


def test_checkpoint_loading_says_what_the_file_is(tmp_path):
    model, opt = small_model()
    good = gd.save_checkpoint(tmp_path / "good.npz", model, opt)
    np.savez(tmp_path / "plain.npz", X=np.ones(3), y=np.zeros(3))
    np.save(tmp_path / "one.npy", np.ones(3))
    (tmp_path / "empty.npz").write_bytes(b"")
    (tmp_path / "pickle.npz").write_bytes(b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01.")
    np.savez(tmp_path / "objects.npz", w=np.array([{"a": 1}], dtype=object))
    with np.load(good) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = __import__("json").loads(arrays["__meta__"].tobytes())
    newer = {**arrays, "__meta__": np.frombuffer(__import__("json").dumps({**meta, "version": 7}).encode(), np.uint8)}
    np.savez(tmp_path / "newer.npz", **newer)
    cases = {
        "/etc/passwd" if Path("/etc/passwd").is_file() else str(good): None,
        str(tmp_path / "plain.npz"): "an .npz archive without gpudnn metadata (arrays: X, y), not a gpudnn checkpoint",
        str(tmp_path / "one.npy"): "not a readable gpudnn checkpoint: not an .npz archive: a single .npy array",
        str(tmp_path / "empty.npz"): "not a readable gpudnn checkpoint: not an .npz archive: an empty file",
        str(tmp_path / "pickle.npz"): "not an .npz archive: a Python pickle, which gpudnn never loads",
        str(tmp_path / "objects.npz"): "array 'w': holds Python objects (dtype object), which gpudnn never loads",
        str(tmp_path / "newer.npz"): "written by a newer gpudnn, checkpoint format version 7; this gpudnn reads "
                                     "versions up to 2",
        str(tmp_path): "is a folder, not a file",
    }
    for path, message in cases.items():
        if message is None:
            message = "not a readable gpudnn checkpoint: not an .npz archive: a text file"
        with pytest.raises(gd.CheckpointError) as info:
            gd.load_checkpoint(path)
        text = str(info.value)
        assert text.startswith(path) and message in text and "\n" not in text, text
        assert "allow_pickle" not in text and "pickle.load" not in text


def test_metadata_is_covered_by_the_checksum_and_version_1_still_loads(tmp_path):
    import json

    from gpudnn.checkpoint import _checksum

    model, opt = small_model()
    path = gd.save_checkpoint(tmp_path / "c.npz", model, opt, extra={"lr_note": 0.5})
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(arrays.pop("__meta__").tobytes())
    altered = {**meta, "extra": {"lr_note": 0.6}}
    np.savez(tmp_path / "altered.npz", **arrays, __meta__=np.frombuffer(json.dumps(altered).encode(), np.uint8))
    with pytest.raises(gd.CheckpointError, match="failed its checksum"):
        gd.load_checkpoint(tmp_path / "altered.npz")
    v1 = {**meta, "version": 1, "checksum": _checksum(arrays)}  # version 1: the checksum covers the arrays only
    np.savez(tmp_path / "v1.npz", **arrays, __meta__=np.frombuffer(json.dumps(v1).encode(), np.uint8))
    loaded = gd.load_checkpoint(tmp_path / "v1.npz", with_optimizer=True)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(loaded.model.state_dict()[name], value)


def test_npy_and_npz_readers_refuse_objects_huge_headers_and_trailing_bytes(tmp_path):
    X = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.save(tmp_path / "x.npy", X)
    np.testing.assert_array_equal(read_npy(tmp_path / "x.npy"), X)
    np.save(tmp_path / "f.npy", np.asfortranarray(X))
    np.testing.assert_array_equal(read_npy(tmp_path / "f.npy"), X)
    np.savez_compressed(tmp_path / "c.npz", X=X, y=np.arange(3))
    got = read_npz(tmp_path / "c.npz")
    np.testing.assert_array_equal(got["X"], X)
    np.testing.assert_array_equal(got["y"], np.arange(3))
    with open(tmp_path / "huge.npy", "wb") as f:  # a header claiming 10**12 floats, then 48 bytes
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (10**12,)})
        f.write(X.tobytes())
    with pytest.raises(ValueError, match=r"huge.npy: truncated: the header declares shape \(1000000000000,\)"):
        read_npy(tmp_path / "huge.npy")
    blob = (tmp_path / "x.npy").read_bytes()
    (tmp_path / "tail.npy").write_bytes(blob + b"\0")
    with pytest.raises(ValueError, match="tail.npy: unexpected trailing data"):
        read_npy(tmp_path / "tail.npy")
    np.save(tmp_path / "o.npy", np.array([None, 1], dtype=object), allow_pickle=True)
    for loader in (read_npy, load_features):
        with pytest.raises(ValueError) as info:
            loader(tmp_path / "o.npy")
        assert "holds Python objects" in str(info.value) and "allow_pickle" not in str(info.value)
    np.savez(tmp_path / "o.npz", X=np.array([None, 1], dtype=object), y=np.zeros(2))
    for loader in (load_features, load_dataset):
        with pytest.raises(ValueError) as info:
            loader(tmp_path / "o.npz")
        assert "o.npz: array 'X': holds Python objects" in str(info.value) and "pickle.load" not in str(info.value)


@pytest.mark.parametrize("compression", ["stored", "deflated"])
def test_an_npz_member_claiming_more_than_it_stores_is_refused_before_allocating(tmp_path, compression):
    import struct
    import tracemalloc
    import zipfile

    with open(tmp_path / "x.npy", "wb") as f:  # a header claiming 500 MB, then 100 bytes
        np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": (500_000_000,)})
        f.write(bytes(100))
    npy = (tmp_path / "x.npy").read_bytes()
    method = zipfile.ZIP_STORED if compression == "stored" else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(tmp_path / "a.npz", "w", method) as z:
        z.writestr("X.npy", npy)
    blob = bytearray((tmp_path / "a.npz").read_bytes())
    entry = blob.index(b"PK\x01\x02")  # the central directory entry: file_size at offset 24
    blob[entry + 24:entry + 28] = struct.pack("<I", 500_000_000 + len(npy) - 100)
    (tmp_path / "a.npz").write_bytes(bytes(blob))
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"a.npz: damaged .npz archive: member 'X.npy' declares 5000\d+ bytes"):
            read_npz(tmp_path / "a.npz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_no_message_of_gpudnn_suggests_unpickling():
    """No string in gpudnn's code mentions NumPy's unpickling switches (keyword arguments are not strings)."""
    found = []
    for path in list((ROOT / "gpudnn").rglob("*.py")) + list((ROOT / "kernels").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if "allow_pickle" in node.value or "pickle.load" in node.value:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, found
