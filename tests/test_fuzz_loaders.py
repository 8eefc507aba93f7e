"""Property-based fuzzing of every file loader: CSV, IDX (raw and gzipped), .npy, .npz and checkpoints.

Each drawn file either loads to the data a reference reader finds in it (the format read another way:
str.split for the generated CSV tables, struct for IDX, NumPy for .npy/.npz, the saved model for
checkpoints), or is refused with one line that names the file: never another exception, never wrong
data. Headers that declare huge sizes are refused before any large allocation.
GPUDNN_FUZZ_EXAMPLES sets the examples per test (default 60, well under a minute for the whole file).
"""

from __future__ import annotations

import gzip
import json
import math
import os
import struct
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

import gpudnn as gd
from gpudnn.data import load_dataset, load_features
from gpudnn.data.files import MAX_CLASSES

EXAMPLES = int(os.environ.get("GPUDNN_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
HUGE = settings(FUZZ, max_examples=max(EXAMPLES // 2, 10))
ALLOWED = (ValueError, TypeError)  # CheckpointError and the loaders' file errors are ValueErrors


@pytest.fixture(autouse=True)
def numpy_backend():
    with gd.use_backend("numpy") as b:
        yield b


def refused_cleanly(exc: BaseException, path: Path) -> str:
    """The message of a loader's refusal, checked: one line, naming the file, no unpickling advice."""
    text = str(exc)
    assert isinstance(exc, ALLOWED), f"{type(exc).__name__}: {text}"
    assert "\n" not in text, text
    assert str(path) in text, text
    assert "allow_pickle" not in text and "pickle.load" not in text, text
    return text


def load_or_refuse(load, path: Path, named: Path | None = None):
    """load(path), or None after checking that its refusal is clean and names ``named`` (default: path)."""
    try:
        return load(path)
    except Exception as exc:  # any other kind of exception fails in refused_cleanly
        refused_cleanly(exc, named or path)
        return None


def refused_without_allocating(load, path: Path, message: str) -> None:
    """load(path) refuses with ``message`` while Python's allocations stay under 4 MiB."""
    tracemalloc.start()
    try:
        with pytest.raises(ValueError) as info:
            load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert message in refused_cleanly(info.value, path)
    assert peak < 4 << 20, f"{peak} bytes allocated to refuse a header"


@st.composite
def mutations(draw, blob: bytes) -> bytes:
    """``blob`` truncated, overwritten, spliced, extended, emptied or replaced by random bytes."""
    kind = draw(st.sampled_from(["truncate", "overwrite", "insert", "delete", "append", "empty", "random", "edits"]))
    if kind == "empty":
        return b""
    if kind == "random":
        return draw(st.binary(max_size=300))
    if kind == "truncate":
        return blob[:draw(st.integers(0, max(len(blob) - 1, 0)))]
    if kind == "append":
        return blob + draw(st.binary(min_size=1, max_size=40))
    data = bytearray(blob)
    for _ in range(draw(st.integers(1, 4)) if kind == "edits" else 1):
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        step = draw(st.sampled_from(["overwrite", "insert", "delete"])) if kind == "edits" else kind
        if step == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=8))
            data[at:at + len(chunk)] = chunk
        elif step == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[at:at + draw(st.integers(1, 16))]
    return bytes(data)


def rows_of(d: gd.data.Dataset) -> np.ndarray:
    """All samples of a dataset (train and test) with their labels, as rows sorted lexicographically."""
    rows = np.column_stack([np.concatenate([d.X_train, d.X_test]).astype(np.float64),
                            np.concatenate([d.y_train, d.y_test])])
    return rows[np.lexsort(rows.T[::-1])] if len(rows) else rows


def sorted_rows(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    rows = np.column_stack([np.asarray(X, np.float64).reshape(len(X), -1), y])
    return rows[np.lexsort(rows.T[::-1])]


# --------------------------------------------------------------------------- CSV

NUMBERS = st.one_of(st.integers(-5, 5).map(str), st.floats(-1e6, 1e6, allow_nan=False).map(repr),
                    st.sampled_from(["0.5", " 2 ", "1e3", "-0", "3.4e38"]))
ODD = st.sampled_from(["nan", "inf", "-inf", "NaN", "", "x", "abc", "é", "1a", "--1", "0x10", "1e39", "-1e39"])
LABELS_ODD = st.sampled_from(["1.0", "-1", "2.5", "nan", "x", "3e7", "9999999"])


def mostly(common: st.SearchStrategy, rare: st.SearchStrategy, one_in: int) -> st.SearchStrategy:
    """``rare`` about once in ``one_in`` draws, else ``common`` (a table should often be valid, not always)."""
    return st.integers(0, one_in - 1).flatmap(lambda k: rare if k == one_in - 1 else common)  # 0: the shrink target


CELLS = mostly(NUMBERS, ODD, 25)
LABELS = mostly(st.integers(0, 3).map(str), LABELS_ODD, 12)


@st.composite
def csv_tables(draw) -> tuple[bytes, str]:
    """A CSV file's bytes (random cells, optional header, BOM, line endings, encoding) and its encoding."""
    width = draw(st.sampled_from([2, 3, 4] * 3 + [1]))
    n = draw(st.sampled_from(list(range(2, 10)) * 2 + [0, 1]))
    rows = [[draw(CELLS) for _ in range(width - 1)] + [draw(LABELS)] for _ in range(n)]
    if draw(st.booleans()):
        rows.insert(0, [f"f{j}" for j in range(width - 1)] + ["label"])
    if rows and draw(st.booleans()):
        rows.insert(draw(st.integers(0, len(rows))), [])  # a blank line
    if rows and draw(st.integers(0, 9)) == 0:
        rows[draw(st.integers(0, len(rows) - 1))].append("1")  # a row with one field too many
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = newline.join(",".join(r) for r in rows) + draw(st.sampled_from(["", newline]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "latin-1"]))
    return text.encode(encoding), encoding


def csv_reference(data: bytes) -> np.ndarray | None:
    """The (features, label) rows a correct reader finds in a generated table, or None when it must be refused."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    rows = [[c.strip() for c in line.split(",")] for line in text.splitlines()]
    rows = [r for r in rows if any(r)]
    if not rows or len({len(r) for r in rows}) > 1 or len(rows[0]) < 2:
        return None

    def number(c: str) -> float | None:
        try:
            return float(c)
        except ValueError:
            return None

    if any(number(c) is None for c in rows[0]):
        rows = rows[1:]
    values = [[number(c) for c in r] for r in rows]
    if not values or any(v is None for r in values for v in r):
        return None
    table = np.array(values, dtype=np.float64)
    with np.errstate(over="ignore"):
        features = table[:, :-1].astype(np.float32)
    labels = table[:, -1]
    if not np.isfinite(features).all() or not np.isfinite(labels).all():
        return None
    if (labels != np.round(labels)).any() or (labels < 0).any() or labels.max() + 1 > MAX_CLASSES:
        return None
    if math.ceil(0.2 * len(rows) - 1e-9) >= len(rows):  # the split would leave no training sample
        return None
    return sorted_rows(features, labels)


@FUZZ
@given(table=csv_tables())
@example(table=(b"\xef\xbb\xbfa,y\r\n1,0\r\n2,1\r\n3,0\r\n4,1\r\n5,0\r\n", "utf-8-sig"))
@example(table=(b"a,y\r1,0\r2,1\r", "utf-8"))
@example(table=(b"", "utf-8"))
@example(table=(b"1,0\n\xff,1\n", "latin-1"))
def test_csv_tables_load_as_their_cells_say_or_are_refused_by_line(tmp_path, table):
    data, _ = table
    path = tmp_path / "t.csv"
    path.write_bytes(data)
    expected = csv_reference(data)
    try:
        got = load_dataset(path)
    except Exception as exc:
        text = refused_cleanly(exc, path)
        assert expected is None, f"refused a valid table: {text}"
        event("refused")
        return
    event("loaded")
    assert expected is not None, "loaded a table that should be refused"
    np.testing.assert_array_equal(rows_of(got), expected)


@pytest.fixture(scope="module")
def csv_blob() -> bytes:
    rng = np.random.default_rng(0)
    lines = ["a,b,c,label"] + [f"{x:.3f},{y:.3f},{z:.3f},{k}" for (x, y, z), k in
                               zip(rng.standard_normal((12, 3)), rng.integers(0, 3, 12))]
    return "\n".join(lines).encode()


@FUZZ
@given(data=st.data())
def test_damaged_csv_files_load_or_are_refused_cleanly(tmp_path, csv_blob, data):
    path = tmp_path / "t.csv"
    path.write_bytes(data.draw(mutations(csv_blob)))
    got = load_or_refuse(load_dataset, path)
    if got is not None:
        assert got.X_train.dtype == np.float32 and np.isfinite(got.X_train).all()


# --------------------------------------------------------------------------- IDX


def idx_bytes(array: np.ndarray) -> bytes:
    return struct.pack(f">I{array.ndim}I", 0x0800 | array.ndim, *array.shape) + array.astype(np.uint8).tobytes()


def idx_reference(data: bytes, ndim: int) -> np.ndarray | None:
    """The array of an IDX file of unsigned bytes read with struct, or None when it is not one."""
    if len(data) < 4 + 4 * ndim or struct.unpack(">I", data[:4])[0] != 0x0800 | ndim:
        return None
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    body = data[4 + 4 * ndim:]
    return np.frombuffer(body, np.uint8).reshape(dims) if len(body) == math.prod(dims) else None


@pytest.fixture(scope="module")
def idx_pair() -> tuple[bytes, bytes]:
    rng = np.random.default_rng(1)
    return idx_bytes(rng.integers(0, 256, (10, 3, 2))), idx_bytes(rng.integers(0, 4, 10))


@FUZZ
@given(data=st.data(), gz=st.booleans(), target=st.sampled_from(["images", "labels"]))
def test_damaged_idx_files_load_exactly_or_are_refused(tmp_path, idx_pair, data, gz, target):
    images, labels = idx_pair
    damaged = data.draw(mutations(images if target == "images" else labels))
    files = {"images": images, "labels": labels, target: damaged}
    suffix = ".gz" if gz else ""
    stored = damaged
    if gz and data.draw(st.booleans(), label="damage the gzip stream instead"):
        files[target] = images if target == "images" else labels
        stored = data.draw(mutations(gzip.compress(files[target], mtime=0)))
    for name in ("images", "labels"):
        raw = files[name]
        blob = (stored if name == target and gz else gzip.compress(raw, mtime=0)) if gz else raw
        (tmp_path / f"train-{name}-idx{3 if name == 'images' else 1}-ubyte{suffix}").write_bytes(blob)
    path = tmp_path / f"train-images-idx3-ubyte{suffix}"
    got = load_or_refuse(lambda p: load_dataset(p, test_fraction=0.3), path, tmp_path)  # either file may be named
    if gz:  # the gzip layer: what loads must be what the bytes hold
        try:
            raw = {n: gzip.decompress((tmp_path / f"train-{n}-idx{3 if n == 'images' else 1}-ubyte.gz").read_bytes())
                   for n in ("images", "labels")}
        except Exception:
            assert got is None, "loaded a damaged gzip stream"
            return
    else:
        raw = files
    pixels, y = idx_reference(raw["images"], 3), idx_reference(raw["labels"], 1)
    valid = pixels is not None and y is not None and len(pixels) == len(y) and math.ceil(0.3 * len(y) - 1e-9) < len(y)
    if not gz:
        assert (got is not None) == valid
    if got is not None:
        assert valid, "loaded damaged IDX files"
        expected = sorted_rows((pixels.reshape(len(pixels), -1) / np.float32(255)).astype(np.float32), y)
        np.testing.assert_array_equal(rows_of(got), expected)


HUGE_DIMS = st.tuples(st.integers(1, 2**32 - 1), st.integers(1, 2**32 - 1), st.integers(1, 2**32 - 1)).filter(
    lambda d: math.prod(d) > 10**7)


@HUGE
@given(dims=HUGE_DIMS, gz=st.booleans())
@example(dims=(10**6, 10**3, 10**3), gz=False)
@example(dims=(10**6, 10**3, 10**3), gz=True)
def test_idx_headers_declaring_huge_sizes_are_refused_without_allocating(tmp_path, dims, gz):
    header = struct.pack(">4I", 0x0803, *dims) + bytes(100)
    labels = struct.pack(">2I", 0x0801, dims[0]) + bytes(100)
    suffix = ".gz" if gz else ""
    pack = (lambda b: gzip.compress(b, mtime=0)) if gz else (lambda b: b)
    (tmp_path / f"train-images-idx3-ubyte{suffix}").write_bytes(pack(header))
    (tmp_path / f"train-labels-idx1-ubyte{suffix}").write_bytes(pack(labels))
    refused_without_allocating(load_dataset, tmp_path / f"train-images-idx3-ubyte{suffix}",
                               f"the header gives shape {dims}")


# --------------------------------------------------------------------------- .npy and .npz


@pytest.fixture(scope="module")
def npy_blobs(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("blobs")
    rng = np.random.default_rng(2)
    np.save(folder / "x.npy", rng.standard_normal((6, 4)).astype(np.float32))
    np.savez(folder / "d.npz", X=rng.standard_normal((10, 3)), y=rng.integers(0, 3, 10))
    np.savez_compressed(folder / "c.npz", X=rng.standard_normal((10, 3)), y=rng.integers(0, 3, 10))
    return {name: (folder / name).read_bytes() for name in ("x.npy", "d.npz", "c.npz")}


def numpy_reads(path: Path, key: str | None = None) -> np.ndarray | dict | None:
    """What NumPy itself reads from the file without unpickling (None: it cannot)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = np.load(path, allow_pickle=False)
            if isinstance(loaded, np.ndarray):
                return loaded
            with loaded:
                return {k: loaded[k] for k in loaded.files}
    except Exception:
        return None


@FUZZ
@given(data=st.data())
@example(data=None)
def test_damaged_npy_inputs_give_numpys_array_or_a_clean_refusal(tmp_path, npy_blobs, data):
    blob = npy_blobs["x.npy"]
    path = tmp_path / "x.npy"
    path.write_bytes(blob if data is None else data.draw(mutations(blob)))
    got = load_or_refuse(load_features, path)
    if got is not None:
        reference = numpy_reads(path)
        assert reference is not None, "loaded a file NumPy cannot read"
        np.testing.assert_array_equal(got, np.asarray(reference, np.float32).reshape(len(reference), -1))


@FUZZ
@given(data=st.data(), name=st.sampled_from(["d.npz", "c.npz"]))
def test_damaged_npz_datasets_give_their_arrays_or_a_clean_refusal(tmp_path, npy_blobs, data, name):
    path = tmp_path / name
    path.write_bytes(data.draw(mutations(npy_blobs[name])))
    got = load_or_refuse(load_dataset, path)
    if got is not None:
        reference = numpy_reads(path)
        assert reference is not None, "loaded an archive NumPy cannot read"
        np.testing.assert_array_equal(rows_of(got), sorted_rows(np.asarray(reference["X"], np.float32),
                                                                reference["y"]))


@HUGE
@given(shape=st.lists(st.integers(0, 2**40), min_size=1, max_size=3).filter(lambda s: math.prod(s) > 10**6),
       compressed=st.booleans())
def test_npy_headers_declaring_huge_shapes_are_refused_without_allocating(tmp_path, shape, compressed):
    path = tmp_path / "huge.npy"
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": tuple(shape)})
        f.write(bytes(64))
    archive = tmp_path / "huge.npz"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED) as z:
        z.write(path, "X.npy")
        z.writestr("y.npy", (tmp_path / "huge.npy").read_bytes())
    for loader, target in ((load_features, path), (load_features, archive), (load_dataset, archive)):
        refused_without_allocating(loader, target, f"declares shape {tuple(shape)}")


# --------------------------------------------------------------------------- checkpoints


@pytest.fixture(scope="module")
def checkpoint_blob(tmp_path_factory) -> tuple[bytes, dict[str, np.ndarray], dict]:
    folder = tmp_path_factory.mktemp("ckpt")
    with gd.use_backend("numpy"):
        gd.seed(3)
        model = gd.Sequential(gd.Dense(4, 6, activation="tanh"), gd.LayerNorm(6), gd.Dense(6, 3))
        opt = gd.Adam(model.parameters(), lr=1e-2)
        rng = np.random.default_rng(3)
        gd.fit(model, gd.SoftmaxCrossEntropy(), opt, rng.standard_normal((32, 4)), rng.integers(0, 3, 32),
               epochs=1, batch_size=8, progress=False)
        path = gd.save_checkpoint(folder / "c.npz", model, opt, epoch=1, extra={"note": "fuzz"})
    return path.read_bytes(), model.state_dict(), {k: v.copy() for k, v in opt.state.items()}


@FUZZ
@given(data=st.data(), stored=st.sampled_from(["as saved", "recompressed"]))
def test_damaged_checkpoints_load_the_saved_model_or_are_refused(tmp_path, checkpoint_blob, data, stored):
    blob, weights, state = checkpoint_blob
    path = tmp_path / "c.npz"
    if stored == "recompressed":  # the same arrays in a deflated archive: damage then hits compressed streams
        path.write_bytes(blob)
        with np.load(path) as npz:
            np.savez_compressed(path, **{k: npz[k] for k in npz.files})
        blob = path.read_bytes()
    path.write_bytes(data.draw(mutations(blob)))
    got = load_or_refuse(lambda p: gd.load_checkpoint(p, with_optimizer=True), path)
    event("loaded" if got is not None else "refused")
    if got is not None:  # whatever loads is exactly what was saved (the checksum covers arrays and metadata)
        assert got.epoch == 1 and got.extra["note"] == "fuzz"
        for name, value in weights.items():
            np.testing.assert_array_equal(got.model.state_dict()[name], value)
        for name, value in state.items():
            np.testing.assert_array_equal(got.optimizer.state[name], value)


def test_checkpoint_metadata_of_the_wrong_shape_is_refused(tmp_path, checkpoint_blob):
    """Metadata that is valid JSON but not a checkpoint's document (a list, a number, no format)."""
    blob, _, _ = checkpoint_blob
    (tmp_path / "c.npz").write_bytes(blob)
    with np.load(tmp_path / "c.npz") as npz:
        arrays = {k: npz[k] for k in npz.files if k != "__meta__"}
    for doc in ([1, 2], 3, {"format": "gpudnn-checkpoint"}, {"format": "gpudnn-checkpoint", "version": True},
                {"format": "other"}):
        path = tmp_path / "m.npz"
        np.savez(path, **arrays, __meta__=np.frombuffer(json.dumps(doc).encode(), np.uint8))
        load_or_refuse(gd.load_checkpoint, path)
        with pytest.raises(gd.CheckpointError):
            gd.load_checkpoint(path)
    np.savez(tmp_path / "f.npz", **arrays, __meta__=np.ones(3))
    with pytest.raises(gd.CheckpointError, match="damaged gpudnn metadata"):
        gd.load_checkpoint(tmp_path / "f.npz")
