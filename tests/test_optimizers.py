"""Optimizer classes: flat-arena packing, hyper-parameter mapping and trajectories against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

import gpudnn as gd
from tests.test_optim_kernels import _exact_step, _initial_state

CASES = [
    ("SGD", {"lr": 0.1}, {"lr": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "l2": 0.01},
     {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "dampening": 0.3}, {"lr": 0.05, "momentum": 0.8, "dampening": 0.3}),
    ("Adam", {"lr": 1e-2, "l2": 0.05}, {"lr": 1e-2, "weight_decay": 0.05}),
    ("AdamW", {"lr": 1e-2, "weight_decay": 0.1, "betas": (0.8, 0.99)},
     {"lr": 1e-2, "weight_decay": 0.1, "betas": (0.8, 0.99)}),
    ("RMSprop", {"lr": 1e-2, "momentum": 0.5, "centered": True}, {"lr": 1e-2, "momentum": 0.5, "centered": True}),
    ("RMSprop", {"lr": 1e-2, "alpha": 0.9, "l2": 0.02}, {"lr": 1e-2, "alpha": 0.9, "weight_decay": 0.02}),
]


@pytest.fixture(autouse=True)
def numpy_backend():
    with gd.use_backend("numpy") as b:
        gd.seed(0)
        yield b


@pytest.mark.parametrize("name,ours,theirs", CASES)
def test_twenty_steps_match_torch(name, ours, theirs, rng):
    torch = pytest.importorskip("torch")
    model = gd.Sequential(gd.Dense(5, 4, activation="tanh", dtype=np.float64), gd.Dense(4, 3, dtype=np.float64))
    params = model.parameters()
    reference = [torch.tensor(p.data.copy(), requires_grad=True) for p in params]
    opt = getattr(gd, name)(params, **ours)
    torch_opt = getattr(torch.optim, name)(reference, **theirs)
    for _ in range(20):
        grads = [rng.standard_normal(p.shape) for p in params]
        opt.zero_grad()
        for p, g, t in zip(params, grads, reference):
            p.accumulate(g)
            t.grad = torch.tensor(g)
        opt.step()
        torch_opt.step()
    for p, t in zip(params, reference):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-10, atol=1e-12, err_msg=p.name)


# (class, its arguments, kernel, the kernel's hyper-parameters the class must pass): each mapping written out
# by hand, so that a class passing a hyper-parameter under the wrong name (or not at all) disagrees.
CLASS_CASES = [
    ("SGD", {"lr": 0.1}, "sgd", {"lr": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "l2": 0.01},
     "sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "l2": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "l1": 0.01, "weight_decay": 0.2},
     "sgd", {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "l1": 0.01, "weight_decay": 0.2}),
    ("Adam", {"lr": 1e-2, "l2": 0.05}, "adam", {"lr": 1e-2, "l2": 0.05}),
    ("Adam", {"lr": 2e-2, "betas": (0.7, 0.95), "eps": 1e-2}, "adam", {"lr": 2e-2, "beta1": 0.7, "beta2": 0.95,
                                                                       "eps": 1e-2}),
    ("AdamW", {"lr": 1e-2, "weight_decay": 0.1, "betas": (0.8, 0.99)},
     "adam", {"lr": 1e-2, "weight_decay": 0.1, "beta1": 0.8, "beta2": 0.99}),
    ("AdamW", {"lr": 1e-2}, "adam", {"lr": 1e-2, "weight_decay": 1e-2}),  # PyTorch's default weight_decay
    ("RMSprop", {"lr": 1e-2, "momentum": 0.5, "centered": True}, "rmsprop", {"lr": 1e-2, "momentum": 0.5,
                                                                              "centered": True}),
    ("RMSprop", {"lr": 1e-2, "alpha": 0.9, "l2": 0.02, "eps": 1e-3}, "rmsprop", {"lr": 1e-2, "alpha": 0.9,
                                                                                  "l2": 0.02, "eps": 1e-3}),
]


def _class_case_id(case) -> str:
    name, ours = case[:2]
    return "-".join([name] + [k if v is True else f"{k}={v}" for k, v in ours.items()])


@pytest.mark.parametrize("name,ours,kernel,hyper", CLASS_CASES, ids=[_class_case_id(c) for c in CLASS_CASES])
@pytest.mark.parametrize("max_grad_norm", [None, 1.0], ids=["unclipped", "clipped"])
def test_classes_pass_their_hyper_parameters_to_the_kernels(name, ours, kernel, hyper, max_grad_norm, rng):
    """5 steps of a float64 model through the optimizer class against the kernels' float64 formulas
    (tests/test_optim_kernels.py) with the hyper-parameters the class should pass; runs without torch.
    max_grad_norm: the clipping scale the class must pass as grad_scale."""
    model = gd.Sequential(gd.Dense(5, 4, activation="tanh", dtype=np.float64), gd.Dense(4, 3, dtype=np.float64))
    params = model.parameters()
    opt = getattr(gd, name)(params, **ours, max_grad_norm=max_grad_norm)
    expected = np.concatenate([p.data.ravel() for p in params])
    state = _initial_state(kernel, hyper, expected.size, np.float64)
    clipped = 0
    for t in range(1, 6):
        grads = [rng.standard_normal(p.shape) * 2 for p in params]
        opt.zero_grad()
        for p, g in zip(params, grads):
            p.accumulate(g)
        opt.step()
        flat_grad = np.concatenate([g.ravel() for g in grads])
        norm = float(np.sqrt(flat_grad @ flat_grad))
        step_hyper = dict(hyper)
        if max_grad_norm is not None and norm > max_grad_norm:
            step_hyper["grad_scale"] = max_grad_norm / (norm + 1e-6)
            clipped += 1
        expected, state = _exact_step(kernel, t, expected, flat_grad, state, step_hyper)
        got = np.concatenate([p.data.ravel() for p in params])
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12, err_msg=f"{name} step {t}")
        for k, v in state.items():
            np.testing.assert_allclose(opt.state[k], v, rtol=1e-10, atol=1e-12, err_msg=f"{name} {k} step {t}")
    assert opt.step_count == 5
    assert clipped == (5 if max_grad_norm is not None else 0)  # the clipping case really clips


def test_l1_and_clipping_follow_the_formula(rng):
    model = gd.Sequential(gd.Dense(3, 2, dtype=np.float64))
    params = model.parameters()
    start = [p.data.copy() for p in params]
    grads = [rng.standard_normal(p.shape) * 10 for p in params]
    opt = gd.SGD(params, lr=0.1, l1=0.3, max_grad_norm=1.0)
    for p, g in zip(params, grads):
        p.accumulate(g)
    norm = np.sqrt(sum((g**2).sum() for g in grads))
    assert opt.grad_norm() == pytest.approx(norm)
    opt.step()
    for p, p0, g in zip(params, start, grads):
        expected = p0 - 0.1 * (g * (1.0 / (norm + 1e-6)) + 0.3 * np.sign(p0))
        np.testing.assert_allclose(p.data, expected, rtol=1e-12)
    penalty = float(opt.penalty())
    assert penalty == pytest.approx(0.3 * sum(np.abs(p.data).sum() for p in params))


def test_parameters_become_views_of_one_arena():
    model = gd.Sequential(gd.Dense(3, 4), gd.Dense(4, 2))
    opt = gd.Adam(model.parameters())
    arena = opt.arena.data
    assert arena.size == sum(p.size for p in model.parameters())
    for p in model.parameters():
        assert np.shares_memory(p.data, arena) and np.shares_memory(p.grad, opt.arena.grad)
    arena[:] = 1.5
    assert all(np.all(p.data == 1.5) for p in model.parameters())


def test_state_roundtrip_and_bad_hyperparameters():
    model = gd.Sequential(gd.Dense(3, 2))
    opt = gd.RMSprop(model.parameters(), momentum=0.9, centered=True)
    assert set(opt.state) == {"square_avg", "momentum_buf", "grad_avg"}
    params = model.parameters()
    for _ in range(3):
        for p in params:
            p.accumulate(np.linspace(-1, 1, p.size).reshape(p.shape).astype(p.data.dtype))
        opt.step()
        opt.zero_grad()
    state = opt.state_dict()
    saved = {k: np.array(v, copy=True) for k, v in opt.state.items()}
    assert state["step"] == 3 and all(np.any(v != 0) for v in saved.values())
    for v in opt.state.values():
        v[...] = 0
    opt.step_count = 0
    opt.load_state_dict(state)
    assert opt.step_count == 3
    for k, v in opt.state.items():
        np.testing.assert_array_equal(v, saved[k], err_msg=k)
    with pytest.raises(ValueError, match="is for RMSprop, not Adam"):
        gd.Adam(gd.Sequential(gd.Dense(3, 2)).parameters()).load_state_dict(state)
    for bad, message in [({"lr": -1}, "lr must be >= 0"), ({"lr": float("nan")}, "lr must be finite"),
                         ({"betas": (1.0, 0.9)}, "beta1 must be"), ({"eps": 0}, "eps must be > 0"),
                         ({"max_grad_norm": 0}, "max_grad_norm must be > 0")]:
        with pytest.raises(ValueError, match=message):
            gd.Adam(gd.Sequential(gd.Dense(3, 2)).parameters(), **bad)
    with pytest.raises(ValueError, match="nesterov needs momentum"):
        gd.SGD(model.parameters(), nesterov=True)
    with pytest.raises(ValueError, match="params is empty"):
        gd.SGD([])
