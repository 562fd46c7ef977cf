"""Every public name of fastmlp has a docstring that documents its parameters.

Public: the names in ``fastmlp.__all__``, the ``__all__`` of each public
module (callbacks, optim, ops, reference, io, plotting, estimators), and the
public methods and properties of every public class, including those it
inherits from fastmlp's own private bases (the estimators' ``_Base.fit``).
A function's or method's docstring has a numpydoc ``Parameters`` section that
names each parameter of its signature (self and cls aside); a class documents
its constructor's parameters in its own docstring, as numpydoc does; a
property or a module needs a docstring only. The API reference of the
documentation site (docs/api) is generated from these docstrings.
"""

from __future__ import annotations

import importlib
import inspect
import types

import pytest

import fastmlp as fm

# Modules whose __all__ is public API; (module, needs) where needs is an
# optional dependency that the module imports.
_MODULES = [
    ("fastmlp", None),
    ("fastmlp.callbacks", None),
    ("fastmlp.optim", None),
    ("fastmlp.ops", None),
    ("fastmlp.reference", None),
    ("fastmlp.io", None),
    ("fastmlp.plotting", None),
    ("fastmlp.estimators", "sklearn"),
    ("fastmlp.datasets", None),
]


def _section_names(doc, titles=("Parameters", "Other Parameters")):
    """The names a numpydoc docstring lists under its Parameters sections
    (``a, b : type`` lists two; ``*args`` and ``**kwargs`` lose their stars)."""
    lines = inspect.cleandoc(doc).splitlines()
    names = set()
    i = 0
    while i < len(lines) - 1:
        title, rule = lines[i].strip(), lines[i + 1].strip()
        if title in titles and rule and set(rule) == {"-"}:
            i += 2
            while i < len(lines):
                line = lines[i]
                nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
                if line.strip() and nxt and set(nxt) == {"-"} and not line[0].isspace():
                    break  # the next section's title
                if line.strip() and not line[0].isspace():
                    head = line.split(" : ", 1)[0] if " : " in line else line
                    names.update(n.strip().lstrip("*") for n in head.split(","))
                i += 1
            continue
        i += 1
    return names


def _parameters(func):
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):  # builtins without a signature
        return []
    return [p for p in sig.parameters if p not in ("self", "cls")]


def _public_objects():
    """(qualified name, object, kind) for every public name, with the module
    that must be importable for it."""
    out = []
    seen = set()
    for modname, needs in _MODULES:
        if needs is not None:
            try:
                importlib.import_module(needs)
            except ImportError:
                continue
        mod = importlib.import_module(modname)
        out.append((modname, mod, "module"))
        for name in mod.__all__:
            obj = getattr(mod, name)
            if isinstance(obj, types.ModuleType):
                out.append((obj.__name__, obj, "module"))
                continue
            if not (inspect.isclass(obj) or callable(obj)):
                continue  # constants (reference.ACTIVATIONS): documented in the module
            key = id(obj)
            if key in seen:
                continue
            seen.add(key)
            qual = f"{modname}.{name}"
            if inspect.isclass(obj):
                out.append((qual, obj, "class"))
                out.extend(_members(qual, obj))
            else:
                out.append((qual, obj, "function"))
    return out


def _members(qual, cls):
    """Public methods and properties that cls defines or takes from a
    private fastmlp base."""
    out = []
    done = set()
    for klass in cls.__mro__:
        if not klass.__module__.startswith("fastmlp"):
            continue
        if klass is not cls and not klass.__name__.startswith("_"):
            continue  # a public base is checked on its own
        for name, attr in vars(klass).items():
            if name.startswith("_") or name in done:
                continue
            done.add(name)
            if isinstance(attr, property):
                out.append((f"{qual}.{name}", attr, "property"))
                continue
            if isinstance(attr, (staticmethod, classmethod)):
                attr = attr.__func__
            fn = getattr(attr, "fn", attr)  # sklearn's available_if descriptor
            if inspect.isfunction(fn):
                out.append((f"{qual}.{name}", fn, "function"))
    return out


_OBJECTS = _public_objects()


def test_the_public_names_are_found():
    names = {q for q, _, _ in _OBJECTS}
    for expected in ("fastmlp.MLP", "fastmlp.MLP.fit", "fastmlp.MLP.layers",
                     "fastmlp.optim.Adam", "fastmlp.ops.matmul", "fastmlp.reference.Network",
                     "fastmlp.reference.Network.backward", "fastmlp.plot_history",
                     "fastmlp.show_config", "fastmlp.io.save_npz"):
        assert expected in names
    assert len(names) > 100


def test_section_parser():
    doc = """Summary.

    Parameters
    ----------
    x, y : ndarray
        The inputs.
    *args : tuple
    act : str, default "relu"
        With a colon: inside a description.

    Returns
    -------
    z : ndarray
    """
    assert _section_names(doc) == {"x", "y", "args", "act"}


@pytest.mark.parametrize(("qual", "obj", "kind"), _OBJECTS, ids=[q for q, _, _ in _OBJECTS])
def test_docstring(qual, obj, kind):
    doc = inspect.getdoc(obj) if kind != "property" else obj.__doc__
    assert (doc or "").strip(), f"{qual}: no docstring"
    if kind in ("module", "property"):
        return
    func = obj.__init__ if kind == "class" else obj
    if kind == "class" and func is object.__init__:
        return
    params = _parameters(func)
    if not params:
        return
    # A class's own docstring, not its base's (inspect.getdoc falls back).
    doc = (obj.__doc__ or "") if kind == "class" else doc
    documented = _section_names(doc)
    missing = [p for p in params if p not in documented]
    assert not missing, (
        f"{qual}: the docstring's Parameters section does not name {missing} "
        f"(it names {sorted(documented)})"
    )


def test_package_is_typed():
    import pathlib

    assert (pathlib.Path(fm.__file__).parent / "py.typed").is_file()
