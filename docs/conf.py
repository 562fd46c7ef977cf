"""Sphinx configuration of fastmlp's documentation.

Build (from the repository root, with fastmlp installed and the docs extra):

    pip install ".[docs]"
    sphinx-build -W --keep-going -b html docs docs/_build/html

The API reference is generated from the docstrings of the installed package
(autodoc + autosummary, numpydoc style). Nothing is fetched from the network:
intersphinx is off, and the theme ships its assets.
"""

from __future__ import annotations

import os
import sys

try:
    import fastmlp
except ImportError as e:  # pragma: no cover - a message for people, not a test
    sys.exit(
        f"docs/conf.py: cannot import fastmlp ({e}); install it first (pip install \".[docs]\") "
        "so that the API reference can be generated from its docstrings"
    )

project = "fastmlp"
author = "the fastmlp developers"
copyright = "the fastmlp developers"
release = fastmlp.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build"]
# Markdown only for CHANGELOG.md, included from changelog.rst.
myst_heading_anchors = 2

# -- API reference ----------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_typehints = "none"  # types are in the numpydoc Parameters sections
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "undoc-members": False}
numpydoc_show_class_members = False  # the class template lists members itself
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_attributes_as_param_list = False
# Every public function documents every parameter; tests/test_docstrings.py
# enforces it, and numpydoc's validation repeats it in the build.
numpydoc_validation_checks = {"PR01", "PR02", "GL08"}
numpydoc_validation_exclude = {r"\._", r"^fastmlp\.datasets\."}

# -- HTML -------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"fastmlp {release}"
html_static_path = []
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": [],
}
html_context = {"default_mode": "light"}
html_show_sourcelink = False

# -- no network ---------------------------------------------------------------
# No intersphinx: CI reaches only package registries. Links to NumPy or
# scikit-learn are written out where they matter.
os.environ.setdefault("MPLBACKEND", "Agg")


def _skip_foreign_members(app, what, name, obj, skip, options):
    """Document fastmlp's own members only: scikit-learn adds methods such as
    set_fit_request to the estimators' classes, with scikit-learn's
    cross-references in their docstrings."""
    module = getattr(obj, "__module__", None) or ""
    if what == "class" and callable(obj) and not module.startswith("fastmlp"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_foreign_members)
