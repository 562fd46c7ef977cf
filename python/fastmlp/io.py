"""Saving and loading models: one .npz file, no pickle inside.

The file holds the flat parameter buffer (the core's own layout, padding
included, so it is restored with one copy), the batch-norm running
statistics, the optimizer's state buffers, and a JSON document with
everything else: the architecture, the optimizer and schedule with their
configuration and state, the regularization and the step counters. A loaded
model therefore continues training exactly where the saved one stopped.
"""

from __future__ import annotations

import io as _io
import json
import os

import numpy as np

FORMAT = "fastmlp-model"
VERSION = 1


def _state(model):
    from . import __version__

    net = model._require_built()
    layers = []
    for i, spec in enumerate(model._layer_spec):
        layers.append({
            "units": int(spec[1]),
            "activation": model._acts[i],
            "dropout": float(spec[3]),
            "batch_norm": bool(spec[4]),
        })
    opt = model.optimizer
    sched = model.lr_schedule
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "fastmlp": __version__,
        "inputs": int(model._sizes[0]),
        "layers": layers,
        "activation": model.activation,
        "loss": model.loss_name,
        "init": model.init,
        "dtype": np.dtype(model.dtype).name,
        "seed": int(model.seed),
        "optimizer": {"class": type(opt).__name__, "config": opt.get_config()},
        "lr": float(net.optimizer_config()["lr"]),
        "regularization": dict(model._reg),
        "schedule": None if sched is None else {
            "class": type(sched).__name__,
            "config": sched.get_config(),
            "state": sched.get_state() if model._schedule_started else None,
        },
        "optimizer_steps": int(net.optimizer_steps),
        "step_count": int(net.step_count),
        "epochs_done": int(model._epochs_done),
    }
    arrays = {"params": np.array(net.params_flat())}
    for i in range(net.num_layers):
        rm, rv = net.running_stats(i)
        if rm is not None:
            arrays[f"running_mean_{i}"] = np.array(rm)
            arrays[f"running_var_{i}"] = np.array(rv)
    for j, st in enumerate(net.optimizer_state()):
        arrays[f"optimizer_state_{j}"] = np.array(st)
    return meta, arrays


def save(model, path):
    """Write the model to `path` (.npz; the suffix is added when missing)."""
    meta, arrays = _state(model)
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"
    with open(path, "wb") as f:
        np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
    return path


def to_bytes(model):
    meta, arrays = _state(model)
    buf = _io.BytesIO()
    np.savez(buf, meta=np.array(json.dumps(meta)), **arrays)
    return buf.getvalue()


def _read(source, name):
    try:
        with np.load(source, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(f"{name}: not a readable fastmlp model file ({e})") from None
    if "meta" not in data:
        raise ValueError(f"{name}: not a fastmlp model file (no 'meta' entry)")
    try:
        meta = json.loads(str(data.pop("meta")))
    except json.JSONDecodeError as e:
        raise ValueError(f"{name}: corrupt model description ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{name}: not a fastmlp model file")
    if meta.get("version", 0) > VERSION:
        raise ValueError(f"{name}: written by a newer fastmlp (format version {meta['version']})")
    return meta, data


def _build_unchecked(meta, data, name):
    from . import optim
    from .layers import Dense
    from .model import MLP

    specs = [Dense(l["units"], activation=l["activation"], dropout=l["dropout"],
                   batch_norm=l["batch_norm"]) for l in meta["layers"]]
    model = MLP([meta["inputs"]] + specs, activation=meta["activation"], loss=meta["loss"],
                init=meta["init"], dtype=meta["dtype"], seed=meta["seed"])
    opt = optim.optimizer_from_config(meta["optimizer"]["class"], meta["optimizer"]["config"])
    sched = None
    if meta["schedule"] is not None:
        sched = optim.schedule_from_config(meta["schedule"]["class"], meta["schedule"]["config"])
    reg = meta["regularization"]
    model.compile(optimizer=opt, l1=reg["l1"], l2=reg["l2"], clip_norm=reg["clip_norm"],
                  clip_value=reg["clip_value"], lr_schedule=sched)
    net = model._net
    flat = net.params_flat()
    params = data.get("params")
    if params is None or params.shape != flat.shape or params.dtype != flat.dtype:
        raise ValueError(f"{name}: the parameter buffer does not match the architecture")
    if not np.isfinite(params).all():
        raise ValueError(f"{name}: the parameters contain NaN or infinity")
    flat[...] = params
    for i in range(net.num_layers):
        rm, rv = net.running_stats(i)
        if rm is not None:
            for key, dst in ((f"running_mean_{i}", rm), (f"running_var_{i}", rv)):
                src = data.get(key)
                if src is None or src.shape != dst.shape or not np.isfinite(src).all():
                    raise ValueError(f"{name}: {key} is missing, misshapen or not finite")
                if key.startswith("running_var") and (src < 0).any():
                    raise ValueError(f"{name}: {key} has negative variances")
                dst[...] = src
    states = net.optimizer_state()
    for j, st in enumerate(states):
        key = f"optimizer_state_{j}"
        if key not in data or data[key].shape != st.shape:
            raise ValueError(f"{name}: optimizer state {j} is missing or has the wrong shape")
        if not np.isfinite(data[key]).all():
            raise ValueError(f"{name}: optimizer state {j} contains NaN or infinity")
        st[...] = data[key]
    for key in ("optimizer_steps", "step_count", "epochs_done"):
        v = meta.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{name}: {key} must be a count >= 0, got {v!r}")
    net.optimizer_steps = meta["optimizer_steps"]
    net.step_count = meta["step_count"]
    net.set_lr(meta["lr"])
    model._epochs_done = meta["epochs_done"]
    if sched is not None and meta["schedule"]["state"] is not None:
        sched.set_state(meta["schedule"]["state"])
        model._schedule_started = True
    return model


def _build(meta, data, name):
    try:
        return _build_unchecked(meta, data, name)
    except KeyError as e:
        raise ValueError(f"{name}: incomplete model file (missing {e})") from None
    except (TypeError, AttributeError, IndexError) as e:
        raise ValueError(f"{name}: corrupt model description ({e})") from None


def load(path):
    """The model saved at `path` by MLP.save, ready to predict or train on."""
    name = "path"
    p = os.fspath(path)
    if not os.path.exists(p) and os.path.exists(p + ".npz"):
        p += ".npz"
    if not os.path.exists(p):
        raise FileNotFoundError(f"path: no such file {p!r}")
    meta, data = _read(p, name)
    return _build(meta, data, name)


def from_bytes(blob):
    meta, data = _read(_io.BytesIO(blob), "state")
    return _build(meta, data, "state")
