"""Learning-rate schedules (fm.optim) against torch.optim.lr_scheduler.

Each schedule repeats torch's own recursion in Python floats, so the rates
agree to the last bit (they do with torch 2.13); the tests allow 1e-12
relative, so that a change in how torch rounds its Python-float arithmetic
does not fail them, which still catches any wrong rule by many orders.
Warmup is checked against the torch composition its docstring names:
SequentialLR([LinearLR(start_factor=1/(W+1), total_iters=W), schedule],
milestones=[W]); for ReduceLROnPlateau, LinearLR for W epochs, then a fresh
ReduceLROnPlateau at base_lr fed the metrics of epochs W, W+1, ...
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import fastmlp as fm

EPOCHS = 40
BASE_LR = 0.1

CHAINABLE = [
    ("StepLR", {"step_size": 1, "gamma": 0.5}),
    ("StepLR", {"step_size": 3}),
    ("StepLR", {"step_size": 7, "gamma": 0.3}),
    ("ExponentialLR", {"gamma": 0.9}),
    ("ExponentialLR", {"gamma": 1.05}),
    ("CosineAnnealingLR", {"T_max": 10}),                   # 40 epochs: twice past T_max
    ("CosineAnnealingLR", {"T_max": 7, "eta_min": 1e-3}),
    ("CosineAnnealingLR", {"T_max": 1, "eta_min": 0.02}),
]

PLATEAU = [
    {},
    {"patience": 2, "factor": 0.5},
    {"patience": 0, "factor": 0.5, "cooldown": 2},
    {"patience": 1, "factor": 0.3, "min_lr": 5e-3, "threshold_mode": "abs", "threshold": 0.05},
    {"mode": "max", "patience": 2, "factor": 0.5},
    {"mode": "max", "patience": 1, "threshold_mode": "abs", "threshold": 0.01, "cooldown": 1},
    {"patience": 0, "factor": 0.5, "eps": 0.02},             # reductions below eps are skipped
]

WARMUPS = (0, 1, 4)


def metrics(mode="min"):
    """A monitored value with plateaus: improving, flat, noisy, improving, flat."""
    m = []
    v = 1.0
    for e in range(EPOCHS):
        if e < 6 or 15 <= e < 20:
            v *= 0.8
        elif 26 <= e < 30:
            v *= 0.99995  # improvements below the rel threshold 1e-4: still a plateau
        m.append(v + (0.003 * ((e * 7) % 5 - 2) if 20 <= e < 26 else 0.0))
    return m if mode == "min" else [-x for x in m]


def torch_chainable(torch, name, kw, warmup):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=BASE_LR)
    # torch may warn about calling order or deprecated forms; only its values
    # matter here (filterwarnings=error would turn the warnings into errors).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = getattr(torch.optim.lr_scheduler, name)(opt, **kw)
        if warmup > 0:
            lin = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0 / (warmup + 1),
                                                    end_factor=1.0, total_iters=warmup)
            sched = torch.optim.lr_scheduler.SequentialLR(opt, [lin, sched],
                                                          milestones=[warmup])
        lrs = [opt.param_groups[0]["lr"]]
        for _ in range(EPOCHS - 1):
            opt.step()
            sched.step()
            lrs.append(opt.param_groups[0]["lr"])
    return lrs


def torch_plateau(torch, kw, warmup, values):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=BASE_LR)
    lrs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if warmup > 0:
            lin = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0 / (warmup + 1),
                                                    end_factor=1.0, total_iters=warmup)
            lrs.append(opt.param_groups[0]["lr"])
            for _ in range(warmup - 1):
                opt.step()
                lin.step()
                lrs.append(opt.param_groups[0]["lr"])
            opt.param_groups[0]["lr"] = BASE_LR
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kw)
        lrs.append(opt.param_groups[0]["lr"])
        for e in range(warmup + 1, EPOCHS):
            opt.step()
            sched.step(values[e - 1])
            lrs.append(opt.param_groups[0]["lr"])
    return lrs


def run(sched, values=None, base_lr=BASE_LR):
    lrs = [sched.start(base_lr)]
    for e in range(EPOCHS - 1):
        lrs.append(sched.step(None if values is None else values[e]))
        assert sched.lr == lrs[-1]
        assert sched.epoch == e + 1
    return lrs


def _id(name, kw):
    return name + "-" + "-".join(f"{k}={v}" for k, v in kw.items())


@pytest.mark.parametrize("warmup", WARMUPS)
@pytest.mark.parametrize(("name", "kw"), CHAINABLE, ids=[_id(*c) for c in CHAINABLE])
def test_chainable_schedule_matches_torch(name, kw, warmup):
    torch = pytest.importorskip("torch")
    expected = torch_chainable(torch, name, kw, warmup)
    got = run(getattr(fm.optim, name)(**kw, warmup_epochs=warmup))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)
    # The schedule does something (not a constant that a broken rule might also give).
    assert len(set(got)) >= 2


@pytest.mark.parametrize("warmup", WARMUPS)
@pytest.mark.parametrize("kw", PLATEAU, ids=[_id("plateau", k) for k in PLATEAU])
def test_plateau_matches_torch(kw, warmup):
    torch = pytest.importorskip("torch")
    values = metrics(kw.get("mode", "min"))
    expected = torch_plateau(torch, kw, warmup, values)
    got = run(fm.optim.ReduceLROnPlateau(**kw, warmup_epochs=warmup), values)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)
    assert min(got[warmup:]) < BASE_LR  # the metric's plateaus did reduce the rate


def test_warmup_is_linear_to_base_lr():
    # Closed form of the warmup: base_lr * (e + 1) / (W + 1) for e < W, then base_lr.
    for sched in (fm.optim.StepLR(100, warmup_epochs=4),
                  fm.optim.ReduceLROnPlateau(warmup_epochs=4)):
        lrs = run(sched, values=[1.0] * EPOCHS)[:6]
        np.testing.assert_allclose(lrs, [0.02, 0.04, 0.06, 0.08, 0.1, 0.1], rtol=1e-14)


def test_cosine_reaches_eta_min_and_comes_back():
    lrs = run(fm.optim.CosineAnnealingLR(T_max=10, eta_min=0.01))
    assert lrs[0] == BASE_LR
    assert lrs[10] == pytest.approx(0.01, abs=1e-15)
    assert lrs[20] == pytest.approx(BASE_LR, rel=1e-12)
    assert lrs[30] == pytest.approx(0.01, abs=1e-15)


def test_step_lr_closed_form():
    lrs = run(fm.optim.StepLR(step_size=3, gamma=0.5))
    np.testing.assert_allclose(lrs, [BASE_LR * 0.5 ** (e // 3) for e in range(EPOCHS)],
                               rtol=1e-14)


def test_non_plateau_schedules_ignore_the_metric():
    a = run(fm.optim.CosineAnnealingLR(T_max=5, warmup_epochs=2))
    b = run(fm.optim.CosineAnnealingLR(T_max=5, warmup_epochs=2), values=metrics())
    assert a == b


def test_start_resets():
    sched = fm.optim.ReduceLROnPlateau(patience=0, warmup_epochs=1)
    first = run(sched, metrics())
    assert run(sched, metrics()) == first
    assert sched.start(0.5) == 0.25
    assert sched.epoch == 0


# ---------------------------------------------------------------------------
# state and configuration
# ---------------------------------------------------------------------------


ALL = ([(n, dict(kw, warmup_epochs=w)) for n, kw in CHAINABLE[::2] for w in (0, 3)]
       + [("ReduceLROnPlateau", dict(kw, warmup_epochs=w)) for kw in PLATEAU[1:4]
          for w in (0, 3)])


@pytest.mark.parametrize("stop", [0, 2, 3, 4, 17])
@pytest.mark.parametrize(("name", "kw"), ALL, ids=[_id(*c) for c in ALL])
def test_state_round_trip_resumes_identically(name, kw, stop):
    values = metrics(kw.get("mode", "min"))
    whole = run(getattr(fm.optim, name)(**kw), values)

    first = getattr(fm.optim, name)(**kw)
    lrs = [first.start(BASE_LR)]
    for e in range(stop):
        lrs.append(first.step(values[e]))
    saved = json.loads(json.dumps(first.get_state(), allow_nan=False))
    config = json.loads(json.dumps(first.get_config(), allow_nan=False))

    resumed = fm.optim.schedule_from_config(name, config)
    assert resumed == first
    resumed.set_state(saved)
    assert resumed.lr == first.lr and resumed.epoch == stop
    for e in range(stop, EPOCHS - 1):
        lrs.append(resumed.step(values[e]))
    assert lrs == whole


def test_state_before_start():
    sched = fm.optim.StepLR(2)
    assert sched.get_state() == {}
    assert sched.lr is None and sched.epoch is None
    sched.start(1.0)
    sched.set_state({})
    assert sched.lr is None


def test_plateau_state_has_its_counters():
    sched = fm.optim.ReduceLROnPlateau(patience=1, cooldown=3)
    sched.start(1.0)
    assert sched.get_state() == {"epoch": 0, "base_lr": 1.0, "lr": 1.0, "best": None,
                                 "num_bad_epochs": 0, "cooldown_counter": 0}
    for v in (1.0, 2.0, 2.0):
        sched.step(v)
    assert sched.get_state() == {"epoch": 3, "base_lr": 1.0, "lr": 0.1, "best": 1.0,
                                 "num_bad_epochs": 0, "cooldown_counter": 3}


@pytest.mark.parametrize(("name", "kw"), ALL[::3], ids=[_id(*c) for c in ALL[::3]])
def test_config_repr_eq(name, kw):
    sched = getattr(fm.optim, name)(**kw)
    config = sched.get_config()
    assert all(config[k] == v for k, v in kw.items())
    assert eval(repr(sched), vars(fm.optim)) == sched
    assert sched != fm.optim.ExponentialLR(0.5, warmup_epochs=9)
    assert fm.optim.schedule_from_config(name, sched.get_config()) == sched


def test_requires_metric():
    assert fm.optim.ReduceLROnPlateau.requires_metric
    for cls in (fm.optim.StepLR, fm.optim.ExponentialLR, fm.optim.CosineAnnealingLR):
        assert not cls.requires_metric


# ---------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------


BAD = {
    "StepLR step_size 0": (lambda: fm.optim.StepLR(0), ValueError, r"^step_size:"),
    "StepLR step_size float": (lambda: fm.optim.StepLR(2.5), TypeError, r"^step_size:"),
    "StepLR gamma 0": (lambda: fm.optim.StepLR(2, gamma=0.0), ValueError, r"^gamma:"),
    "StepLR gamma string": (lambda: fm.optim.StepLR(2, gamma="0.1"), TypeError, r"^gamma:"),
    "ExponentialLR gamma negative": (lambda: fm.optim.ExponentialLR(-0.5), ValueError,
                                     r"^gamma:"),
    "ExponentialLR gamma inf": (lambda: fm.optim.ExponentialLR(float("inf")), ValueError,
                                r"^gamma:"),
    "Cosine T_max 0": (lambda: fm.optim.CosineAnnealingLR(0), ValueError, r"^T_max:"),
    "Cosine eta_min negative": (lambda: fm.optim.CosineAnnealingLR(5, eta_min=-1.0), ValueError,
                                r"^eta_min:"),
    "warmup negative": (lambda: fm.optim.StepLR(2, warmup_epochs=-1), ValueError,
                        r"^warmup_epochs:"),
    "warmup float": (lambda: fm.optim.ExponentialLR(0.5, warmup_epochs=1.0), TypeError,
                     r"^warmup_epochs:"),
    "plateau mode": (lambda: fm.optim.ReduceLROnPlateau(mode="lowest"), ValueError, r"^mode:"),
    "plateau factor 1": (lambda: fm.optim.ReduceLROnPlateau(factor=1.0), ValueError,
                         r"^factor:"),
    "plateau patience negative": (lambda: fm.optim.ReduceLROnPlateau(patience=-1), ValueError,
                                  r"^patience:"),
    "plateau threshold_mode": (lambda: fm.optim.ReduceLROnPlateau(threshold_mode="pct"),
                               ValueError, r"^threshold_mode:"),
    "plateau threshold negative": (lambda: fm.optim.ReduceLROnPlateau(threshold=-1e-4),
                                   ValueError, r"^threshold:"),
    "plateau cooldown float": (lambda: fm.optim.ReduceLROnPlateau(cooldown=1.5), TypeError,
                               r"^cooldown:"),
    "plateau min_lr negative": (lambda: fm.optim.ReduceLROnPlateau(min_lr=-1.0), ValueError,
                                r"^min_lr:"),
    "plateau eps nan": (lambda: fm.optim.ReduceLROnPlateau(eps=float("nan")), ValueError,
                        r"^eps:"),
    "from_config unknown class": (lambda: fm.optim.schedule_from_config("OneCycleLR", {}),
                                  ValueError, r"^class_name:"),
    "from_config unknown key": (lambda: fm.optim.schedule_from_config("StepLR", {"step": 2}),
                                ValueError, r"^config: unknown argument 'step'"),
    "from_config not a dict": (lambda: fm.optim.schedule_from_config("StepLR", None),
                               TypeError, r"^config:"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_arguments_raise(case):
    call, exc, pattern = BAD[case]
    with pytest.raises(exc, match=pattern):
        call()


def test_bad_calls_raise():
    plateau = fm.optim.ReduceLROnPlateau()
    with pytest.raises(ValueError, match=r"^step: call start"):
        plateau.step(1.0)
    with pytest.raises(ValueError, match=r"^base_lr:"):
        plateau.start(-0.1)
    with pytest.raises(TypeError, match=r"^base_lr:"):
        plateau.start("0.1")
    plateau.start(0.1)
    with pytest.raises(ValueError, match=r"^metric:"):
        plateau.step()
    with pytest.raises(ValueError, match=r"^metric:"):
        plateau.step(float("nan"))
    with pytest.raises(TypeError, match=r"^metric:"):
        plateau.step("0.5")
    assert plateau.epoch == 0  # nothing advanced on bad input
    with pytest.raises(TypeError, match=r"^state:"):
        plateau.set_state([1, 2])
    with pytest.raises(ValueError, match=r"^state: expected the keys"):
        plateau.set_state({"epoch": 1, "base_lr": 0.1, "lr": 0.1})
    good = plateau.get_state()
    with pytest.raises(ValueError, match=r"^state\['epoch'\]:"):
        plateau.set_state(good | {"epoch": -1})
    with pytest.raises(ValueError, match=r"^state\['best'\]:"):
        plateau.set_state(good | {"best": float("inf")})
    assert plateau.get_state() == good
    step = fm.optim.StepLR(2)
    step.start(1.0)
    with pytest.raises(ValueError, match=r"^state: expected the keys"):
        step.set_state(good)



# ---------------------------------------------------------------------------
# closed forms, per epoch, without torch
# ---------------------------------------------------------------------------


CLOSED_FORMS = {  # the rate of the schedule's own epoch k (k = 0 at its start)
    "StepLR": lambda kw, k: BASE_LR * kw.get("gamma", 0.1) ** (k // kw["step_size"]),
    "ExponentialLR": lambda kw, k: BASE_LR * kw["gamma"] ** k,
    "CosineAnnealingLR": lambda kw, k: kw.get("eta_min", 0.0) + (
        BASE_LR - kw.get("eta_min", 0.0)) * (1 + np.cos(np.pi * k / kw["T_max"])) / 2,
}


def closed_form(name, kw, warmup):
    """Epoch e: base_lr (e + 1) / (W + 1) while e < W, then the schedule's
    closed form at k = e - W (past T_max the cosine comes back up: it is
    periodic with period 2 T_max)."""
    return [BASE_LR * (e + 1) / (warmup + 1) if e < warmup else CLOSED_FORMS[name](kw, e - warmup)
            for e in range(EPOCHS)]


@pytest.mark.parametrize("warmup", WARMUPS)
@pytest.mark.parametrize(("name", "kw"), CHAINABLE, ids=[_id(*c) for c in CHAINABLE])
def test_chainable_schedule_closed_form(name, kw, warmup):
    got = run(getattr(fm.optim, name)(**kw, warmup_epochs=warmup))
    # The schedules follow torch's recursions (one rounding per epoch), the
    # closed form is evaluated directly: 40 epochs of roundings stay far below
    # 1e-12 * base_lr.
    np.testing.assert_allclose(got, closed_form(name, kw, warmup), rtol=1e-12,
                               atol=1e-12 * BASE_LR)


# ReduceLROnPlateau, worked by hand from torch's documented rule: a metric is
# an improvement when it beats best * (1 - threshold) (mode min, rel); after
# more than `patience` bad epochs in a row the rate is multiplied by factor
# (not below min_lr, and not when the change would be <= eps), the bad count
# restarts, and `cooldown` epochs follow in which bad epochs do not count.
# lrs[e] is the rate epoch e trains with; the metric of epoch e decides lrs[e + 1].
PLATEAU_BY_HAND = {
    "patience 2": (
        {"patience": 2, "factor": 0.5}, 0,
        [1.0, 0.5, 0.5, 0.5, 0.5, 0.4, 0.4, 0.4, 0.4],
        [0.1, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.025]),
    "gains under the rel threshold are bad epochs": (
        {"patience": 0, "factor": 0.5}, 0,
        [1.0, 0.99995, 0.9998],   # 1 - 5e-5 is not below 1 * (1 - 1e-4); 0.9998 is
        [0.1, 0.1, 0.05, 0.05]),
    "abs threshold": (
        {"patience": 0, "factor": 0.5, "threshold_mode": "abs", "threshold": 0.1},
        0, [1.0, 0.95, 0.85],     # 0.95 is within 0.1 of 1: bad; 0.85 beats 0.9
        [0.1, 0.1, 0.05, 0.05]),
    "mode max with cooldown": (
        {"mode": "max", "patience": 0, "factor": 0.5, "cooldown": 1}, 0,
        [1.0, 0.5, 0.5, 0.5, 2.0],
        [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]),
    "min_lr floor": (
        {"patience": 0, "factor": 0.1, "min_lr": 0.005}, 0,
        [1.0, 1.0, 1.0, 1.0, 1.0],
        [0.1, 0.1, 0.01, 0.005, 0.005, 0.005]),
    "warmup ignores the warmup epochs' metrics": (
        {"patience": 0, "factor": 0.5}, 2,
        [0.0, 0.0, 1.0, 1.0],     # the 0.0s would make 1.0 a bad epoch if they counted
        [0.1 / 3, 0.2 / 3, 0.1, 0.1, 0.05]),
}


@pytest.mark.parametrize("case", list(PLATEAU_BY_HAND), ids=list(PLATEAU_BY_HAND))
def test_plateau_worked_by_hand(case):
    kw, warmup, values, expected = PLATEAU_BY_HAND[case]
    sched = fm.optim.ReduceLROnPlateau(**kw, warmup_epochs=warmup)
    lrs = [sched.start(BASE_LR)]
    lrs += [sched.step(v) for v in values]
    np.testing.assert_allclose(lrs, expected, rtol=1e-14, atol=0)


def test_plateau_eps_skips_reductions_smaller_than_eps():
    sched = fm.optim.ReduceLROnPlateau(patience=0, factor=0.5, eps=1e-8)
    lrs = [sched.start(1e-8)] + [sched.step(1.0) for _ in range(4)]
    assert lrs == [1e-8] * 5  # each reduction would change the rate by 5e-9 <= eps
