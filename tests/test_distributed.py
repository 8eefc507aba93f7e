"""gpudnn.distributed without launching ranks: sharding, path selection, the folded 1/size, errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import gpudnn as gd
from gpudnn import distributed as dist
from gpudnn.distributed import context as context_module


@pytest.mark.parametrize("n, size", [(160, 2), (161, 2), (10, 3), (7, 4), (1, 2), (1000, 7)])
def test_shards_are_disjoint_up_to_padding_cover_the_epoch_and_have_one_length(n, size):
    order = np.random.default_rng(n).permutation(n)
    shards = [dist.shard(order, r, size, np) for r in range(size)]
    length = -(-n // size)
    assert all(len(s) == length == dist.shard_length(n, size) for s in shards)
    joined = np.concatenate(shards)
    assert set(joined.tolist()) == set(range(n))  # the union is the whole epoch
    repeated = len(joined) - n  # padding: the first samples of the permutation, once more
    assert repeated == length * size - n < size or n < size
    if n >= size:
        values, counts = np.unique(joined, return_counts=True)
        assert sorted(values[counts == 2].tolist()) == sorted(order[:repeated].tolist())
        assert counts.max() <= 2
    # step s of the job covers positions [s*size*B, (s+1)*size*B) of the padded order
    padded = order[np.arange(length * size) % n]
    B = 3
    for s in range(-(-length // B)):
        batch = np.concatenate([sh[s * B:(s + 1) * B] for sh in shards])
        np.testing.assert_array_equal(np.sort(batch), np.sort(padded[s * size * B:(s + 1) * size * B]))


def test_shards_change_every_epoch_and_repeat_under_a_seed():
    def epochs(seed):
        b = gd.backend.backend("numpy")
        b.seed(seed)
        orders = [b.permutation(50) for _ in range(3)]  # one draw per epoch, the same on every rank
        return [[dist.shard(order, r, 2, np) for r in range(2)] for order in orders]

    first, again = epochs(7), epochs(7)
    for e in range(3):
        for r in range(2):
            np.testing.assert_array_equal(first[e][r], again[e][r])
    assert not np.array_equal(first[0][0], first[1][0])
    assert set(first[0][0].tolist()).isdisjoint(first[0][1].tolist())


def test_shard_refuses_a_bad_rank_or_an_empty_epoch():
    with pytest.raises(ValueError, match="rank must be in"):
        dist.shard(np.arange(4), 2, 2, np)
    with pytest.raises(ValueError, match="empty"):
        dist.shard(np.arange(0), 0, 2, np)


@pytest.mark.parametrize("n, size", [(10, 3), (2, 4), (9, 3), (0, 2)])
def test_evaluation_parts_split_every_sample_once(n, size):
    parts = [dist.split_range(n, r, size) for r in range(size)]
    assert np.concatenate([np.arange(n)[p] for p in parts]).tolist() == list(range(n))
    assert max(p.stop - p.start for p in parts) - min(p.stop - p.start for p in parts) <= 1


def test_gpu_collectives_choose_nccl_only_with_one_gpu_per_rank():
    assert dist.gpu_path(True, [["a", 0], ["a", 1], ["b", 0]])[0] == "nccl"
    path, reason = dist.gpu_path(True, [["a", 0], ["a", 0]])
    assert path == "host-staged mpi" and "ranks 0 and 1 share GPU 0 on a" in reason
    path, reason = dist.gpu_path(False, [["a", 0], ["a", 1]])
    assert path == "host-staged mpi" and "nccl is not available" in reason


def test_init_without_mpi4py_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py now raises ImportError
    monkeypatch.setattr(context_module, "_context", None)
    with pytest.raises(dist.DistributedError, match=r"pip install 'gpudnn\[mpi\]'"):
        dist.init()


def test_a_single_process_is_rank_0_of_1_and_collectives_need_init(monkeypatch):
    monkeypatch.setattr(context_module, "_context", None)
    assert dist.is_main() and dist.rank_and_size() == (0, 1)
    dist.barrier()
    dist.abort(3)  # returns: nothing to abort in a single process
    with pytest.raises(dist.DistributedError, match="init"):
        dist.allreduce_(np.zeros(3))


def test_fit_under_a_launcher_without_init_warns_and_trains_alone(monkeypatch):
    monkeypatch.setattr(context_module, "_context", None)
    monkeypatch.setenv("PMI_SIZE", "2")
    with gd.use_backend("numpy"):
        gd.seed(0)
        model = gd.Sequential(gd.Dense(3, 2))
        X, y = np.random.default_rng(0).normal(size=(8, 3)), np.arange(8) % 2
        with pytest.warns(RuntimeWarning, match="init"):
            gd.fit(model, gd.SoftmaxCrossEntropy(), gd.SGD(model.parameters()), X, y, epochs=1, progress=False)
    assert dist.launched_size() == 2


@pytest.mark.parametrize("kind, kwargs", [("SGD", {"momentum": 0.9}), ("Adam", {}), ("RMSprop", {"centered": True}),
                                          ("Adam", {"max_grad_norm": 0.05, "l2": 0.1})])
def test_grad_scale_is_the_gradient_scaled_inside_the_fused_update(kind, kwargs):
    """step(grad_scale=1/2) on a gradient g (a sum over 2 ranks) equals step() on g / 2: the 1/size of a
    data-parallel mean, clipping measuring the scaled gradient."""
    rng = np.random.default_rng(3)
    w0, grads = rng.normal(size=(6, 4)), rng.normal(size=(5, 6, 4))
    results = []
    for scale, factor in ((0.5, 1.0), (1.0, 0.5)):
        p = gd.Parameter("w", w0.copy(), gd.backend.backend("numpy"))
        opt = getattr(gd, kind)([p], lr=0.01, **kwargs)
        for g in grads:
            p.grad[...] = g * factor
            opt.step(scale)
        results.append(np.asarray(p.data).copy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-14, atol=1e-15)
    assert np.abs(results[0] - w0).max() > 1e-4
    with pytest.raises(ValueError, match="grad_scale"):
        opt.step(0.0)


def test_dropout_seeds_differ_per_stream_and_stream_0_draws_as_before():
    b = gd.backend.backend("numpy")
    draws = {}
    for stream in (0, 1, 2):
        b.seed(11)
        b.seed_stream = stream
        draws[stream] = [b.next_seed() for _ in range(3)]
    b.seed_stream = 0
    plain = np.random.default_rng(11)
    assert draws[0] == [int(plain.integers(0, 2**63 - 1)) for _ in range(3)]
    assert len({tuple(v) for v in draws.values()}) == 3  # per rank
    assert all(len(set(v)) == 3 for v in draws.values())  # per step
    assert all(0 <= s < 2**63 for v in draws.values() for s in v)


def test_importing_gpudnn_does_not_load_mpi():
    import subprocess

    code = "import sys, gpudnn; gpudnn.distributed.rank_and_size(); print('mpi4py' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr
