"""The boundary between the core and Python: names, not positions.

The optimizer's fields are listed once in C++ (FASTMLP_OPT_FIELDS) and once in
Python (fastmlp.optim.CORE_FIELDS): these tests prove that the two agree, that
the kinds Python offers are the core's enums under the names the public
contract (DESIGN.md) gives, that python/fastmlp/_core.pyi describes the
compiled module as it is, and that the io module only reads and writes.
"""

from __future__ import annotations

import ast
import copy
import inspect
import pathlib
import pickle
import re

import numpy as np
import pytest

import fastmlp as fm
from fastmlp import _core, _enums

PKG = pathlib.Path(fm.__file__).parent


# -- the optimizer's fields, written once on each side ----------------------

def test_optimizer_fields_agree_between_cpp_and_python():
    assert tuple(_core.OptConfig.fields()) == fm.optim.CORE_FIELDS


# Each optimizer with every argument away from its default, and the core
# fields those arguments must arrive in (written out here, independently of
# fastmlp.optim's mapping). Fields not listed keep the C++ default.
NON_DEFAULT = [
    (fm.optim.SGD(lr=0.3, momentum=0.7, nesterov=False, weight_decay=0.01, dampening=0.2),
     {"lr": 0.3, "momentum": 0.7, "weight_decay": 0.01, "dampening": 0.2}),
    (fm.optim.SGD(lr=0.3, momentum=0.7, nesterov=True),
     {"lr": 0.3, "momentum": 0.7, "nesterov": True}),
    (fm.optim.Adam(lr=0.2, betas=(0.5, 0.75), eps=1e-6, weight_decay=0.02, amsgrad=True),
     {"lr": 0.2, "beta1": 0.5, "beta2": 0.75, "eps": 1e-6, "weight_decay": 0.02, "amsgrad": True}),
    (fm.optim.AdamW(lr=0.2, betas=(0.6, 0.7), eps=1e-5, weight_decay=0.3),
     {"lr": 0.2, "beta1": 0.6, "beta2": 0.7, "eps": 1e-5, "weight_decay": 0.3}),
    (fm.optim.RMSprop(lr=0.1, alpha=0.8, eps=1e-4, weight_decay=0.05, momentum=0.4,
                      centered=True),
     {"lr": 0.1, "alpha": 0.8, "eps": 1e-4, "weight_decay": 0.05, "momentum": 0.4,
      "centered": True}),
    (fm.optim.Adagrad(lr=0.4, lr_decay=0.1, weight_decay=0.2, initial_accumulator_value=0.3,
                      eps=1e-3),
     {"lr": 0.4, "lr_decay": 0.1, "weight_decay": 0.2, "initial_accumulator": 0.3,
      "eps": 1e-3}),
]


@pytest.mark.parametrize(("opt", "want"), NON_DEFAULT, ids=lambda v: type(v).__name__)
def test_each_optimizer_maps_onto_core_fields(opt, want):
    assert set(opt._core_fields()) <= set(fm.optim.CORE_FIELDS)
    config = opt._core_config()
    assert config.kind == getattr(_core.OptimizerKind, type(opt).__name__.lower())
    defaults = _core.OptConfig(kind=config.kind).as_dict()
    for name in fm.optim.CORE_FIELDS:
        assert getattr(config, name) == want.get(name, defaults[name]), name


def test_optconfig_defaults_are_the_cpp_defaults():
    # The defaults as optimizer.h documents them (an independent listing).
    want = {"lr": 0.01, "weight_decay": 0.0, "momentum": 0.0, "dampening": 0.0,
            "nesterov": False, "beta1": 0.9, "beta2": 0.999, "amsgrad": False, "eps": 1e-8,
            "alpha": 0.99, "centered": False, "lr_decay": 0.0, "initial_accumulator": 0.0}
    got = _core.OptConfig(kind=_core.OptimizerKind.sgd).as_dict()
    assert got.pop("kind") == _core.OptimizerKind.sgd
    assert got == want


def test_optconfig_is_a_read_only_value():
    c = _core.OptConfig(kind=_core.OptimizerKind.adam, lr=0.5)
    with pytest.raises(AttributeError):
        c.lr = 1.0
    assert c == _core.OptConfig(kind=_core.OptimizerKind.adam, lr=0.5)
    assert c != _core.OptConfig(kind=_core.OptimizerKind.adam, lr=0.25)
    assert c != _core.OptConfig(kind=_core.OptimizerKind.adamw, lr=0.5)
    assert c != None and c != {"lr": 0.5}  # noqa: E711
    assert "lr" in repr(c)
    again = pickle.loads(pickle.dumps(c))
    assert again == c and again is not c
    assert copy.deepcopy(c) == c


def test_layer_spec_pickles():
    s = _core.LayerSpec(3, 4, _core.Activation.gelu, 0.5, True)
    t = pickle.loads(pickle.dumps(s))
    assert (t.in_features, t.out_features, t.activation, t.dropout, t.batch_norm) == (
        3, 4, _core.Activation.gelu, 0.5, True)


# -- the kinds: the core's enums under the contract's names -----------------

def test_kinds_are_the_contracts_names():
    assert _enums.ACTIVATIONS == ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu",
                                  "gelu", "softplus")
    assert _enums.LOSSES == ("mse", "cross_entropy", "binary_cross_entropy", "poisson")
    assert set(_enums.INITS) == {"he_uniform", "he_normal", "glorot_uniform", "glorot_normal",
                                 "lecun_normal", "zeros"}
    assert tuple(_core.OptimizerKind.__members__) == ("sgd", "adam", "adamw", "rmsprop",
                                                      "adagrad")


def test_model_hands_the_core_named_layer_specs():
    model = fm.MLP([5, 7, 3], activation="tanh", dropout=0.25, batch_norm=True)
    spec = model._net.layer_spec(0)
    assert isinstance(spec, _core.LayerSpec)
    assert (spec.in_features, spec.out_features) == (5, 7)
    assert spec.activation == _core.Activation.tanh
    assert spec.dropout == 0.25 and spec.batch_norm
    last = model._net.layer_spec(1)
    assert last.activation == _core.Activation.identity
    assert last.dropout == 0.0 and not last.batch_norm
    assert model._net.loss_kind == _core.Loss.cross_entropy
    layer = model.layers[0]
    assert (layer.in_features, layer.units, layer.activation) == (5, 7, "tanh")


def test_step_and_epoch_results_have_named_fields(rng):
    model = fm.MLP([4, 6, 3], dtype="float64")
    X = rng.standard_normal((20, 4))
    y = rng.integers(0, 3, 20).astype(np.int32)
    r = model._net.train_step(X, y, None, None)
    assert isinstance(r, _core.StepResult)
    assert r.ok and r.bad_layer == -1 and np.isfinite(r.loss)
    e = model._net.train_epoch(X, y, None, 8, 0, -1, None, None)
    assert isinstance(e, _core.EpochResult)
    assert (e.rows, e.batches) == (20, 3)
    assert len(e.grad_norm_sum) == 2 and not e.diverged and not e.interrupted


# -- one layer-index check, one message --------------------------------------

@pytest.mark.parametrize("call", [
    lambda net, i: net.layer_spec(i),
    lambda net, i: net.param(i, "W"),
    lambda net, i: net.grad(i, "b"),
    lambda net, i: net.running_mean(i),
    lambda net, i: net.running_var(i),
    lambda net, i: net.dead_fraction(i),
    lambda net, i: net.layer_state(i),
])
@pytest.mark.parametrize("index", [-1, 2, 7])
def test_every_layer_index_is_checked_with_one_message(call, index):
    net = fm.MLP([3, 4, 2])._net
    with pytest.raises(IndexError, match=rf"^layer: expected an index in \[0, 2\), got {index}$"):
        call(net, index)


# -- one loss-weight check, one message --------------------------------------

@pytest.mark.parametrize(("bad", "text"), [
    (np.nan, "nan"), (-np.nan, "nan"), (-1.0, "-1"), (-10.0, "-10"), (-1e15, "-1e+15"),
    (-0.1, "-0.1"), (-np.inf, "-inf"), (np.inf, "inf"), (-1.25e-7, "-1.25e-07")])
def test_loss_weight_messages_are_the_same_everywhere(rng, bad, text):
    X = rng.standard_normal((4, 3))
    y = np.array([0, 1, 0, 1])
    w = np.ones(4)
    w[2] = bad
    model = fm.MLP([3, 2], dtype="float64")
    want = f"sample_weight: weights must be finite and >= 0, got {text} at index 2"
    messages = []
    for call in (
        lambda: model.loss(X, y, sample_weight=w),                      # Python's check
        lambda: model.fit(X, y, epochs=1, verbose=0, sample_weight=w),  # Python's check
        lambda: model._net.loss(X, y.astype(np.int32), False, w, None),  # the core's own
    ):
        with pytest.raises(ValueError) as err:
            call()
        messages.append(str(err.value))
    assert messages == [want] * 3


# -- the stub describes the module ---------------------------------------------

STUB = PKG / "_core.pyi"
REGENERATE = ("regenerate it: pip install pybind11-stubgen && "
              "pybind11-stubgen fastmlp._core -o python (see README, Development)")


def _stub_tree():
    return ast.parse(STUB.read_text())


def _stub_names(body):
    """{name: node} of the functions, classes and annotated names in a body."""
    out = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            out.setdefault(node.name, []).append(node)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out.setdefault(node.target.id, []).append(node)
    return out


def _public(names):
    return {n for n in names if not n.startswith("_")}


def _doc_params(obj):
    """The parameter names of every overload pybind11 lists in obj's docstring."""
    name = getattr(obj, "__name__", "")
    sigs = re.findall(rf"^(?:\d+\. )?{re.escape(name)}\((.*)\) ->", obj.__doc__ or "", re.M)
    out = set()
    for sig in sigs:
        depth, cur, params = 0, "", []
        for ch in sig:
            if ch in "([{":
                depth += 1
            elif ch in ")]}":
                depth -= 1
            if ch == "," and depth == 0:
                params.append(cur)
                cur = ""
            else:
                cur += ch
        if cur.strip():
            params.append(cur)
        out.add(tuple(p.split(":")[0].split("=")[0].strip() for p in params))
    return out


def _stub_params(nodes):
    out = set()
    for fn in nodes:
        if isinstance(fn, ast.FunctionDef):
            names = [a.arg for a in fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs]
            if fn.args.vararg:
                names.append("*" + fn.args.vararg.arg)
            if fn.args.kwarg:
                names.append("**" + fn.args.kwarg.arg)
            out.add(tuple(names))
    return out


def test_stub_lists_every_public_name_of_the_module():
    stub = _public(_stub_names(_stub_tree().body))
    module = _public(dir(_core))
    assert stub == module, (f"in the module only: {sorted(module - stub)}; "
                            f"in the stub only: {sorted(stub - module)}; {REGENERATE}")


def test_stub_functions_have_the_modules_parameters():
    stub = _stub_names(_stub_tree().body)
    for name in _public(dir(_core)):
        obj = getattr(_core, name)
        if inspect.isclass(obj) or not callable(obj):
            continue
        assert _stub_params(stub[name]) == _doc_params(obj), f"_core.{name}: {REGENERATE}"


def test_stub_classes_have_the_modules_members():
    stub = _stub_names(_stub_tree().body)
    for name in _public(dir(_core)):
        cls = getattr(_core, name)
        if not inspect.isclass(cls):
            continue
        members = _stub_names(stub[name][0].body)
        module_members = _public(n for n in vars(cls) if n != "__members__")
        if issubclass(cls, tuple):
            # A struct sequence (StepResult): its fields are listed by
            # __match_args__, which the stub must repeat.
            fields = next(ast.literal_eval(node.value) for node in stub[name][0].body
                          if isinstance(node, ast.AnnAssign)
                          and node.target.id == "__match_args__")
            members_in_order = tuple(n for n, v in vars(cls).items()
                                     if type(v).__name__ == "member_descriptor")
            assert fields == members_in_order, f"_core.{name}: {REGENERATE}"
            module_members -= set(fields)
        assert _public(members) == module_members, f"_core.{name}: {REGENERATE}"
        for m in module_members:
            if isinstance(vars(cls)[m], property):
                continue
            obj = getattr(cls, m)
            if callable(obj):
                assert _stub_params(members[m]) == _doc_params(obj), f"_core.{name}.{m}: {REGENERATE}"


# -- io only reads and writes ---------------------------------------------------

def test_io_imports_nothing_of_the_package_and_reads_no_private_field():
    tree = ast.parse((PKG / "io.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"io.py imports from the package: {ast.dump(node)}"
            assert not (node.module or "").startswith("fastmlp"), ast.dump(node)
        if isinstance(node, ast.Import):
            assert not any(a.name.startswith("fastmlp") for a in node.names), ast.dump(node)
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            base = node.value
            assert isinstance(base, ast.Name) and base.id in {"np", "json", "os"}, (
                f"io.py reads a private field: .{node.attr}")


def test_model_state_round_trips_through_io(tmp_path, rng):
    model = fm.MLP([3, 5, 2], batch_norm=True, dtype="float64").compile("adam")
    X = rng.standard_normal((16, 3))
    y = rng.integers(0, 2, 16)
    model.fit(X, y, epochs=2, batch_size=8, verbose=0)
    meta, arrays = model._state()
    path = fm.io.save_npz(tmp_path / "m", meta, arrays)
    meta2, arrays2 = fm.io.load_npz(path)
    assert meta2.pop("format") == "fastmlp-model" and meta2.pop("version") == 1
    assert meta2 == meta
    assert arrays2.keys() == arrays.keys()
    for k in arrays:
        np.testing.assert_array_equal(arrays2[k], arrays[k])
    again = fm.MLP._from_state(meta2, arrays2)
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))
