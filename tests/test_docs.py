"""The examples of the documentation run and print what the pages say.

Every ``>>>`` example in docs/*.rst and docs/guide/*.rst, and in the
docstrings of the model and the estimators, is run as a doctest. The Sphinx
build itself (warnings as errors) runs in CI (.ci/run), where the docs extra
is installed; these tests need only the test extras.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

# Optional packages a page's examples import.
_NEEDS = {
    "guide/two_apis.rst": ("sklearn",),
    "guide/training.rst": ("matplotlib",),
}


def _pages():
    if not DOCS.is_dir():
        return []
    pages = [p for p in sorted(DOCS.rglob("*.rst"))
             if "_build" not in p.parts and "generated" not in p.parts
             and ">>>" in p.read_text(encoding="utf-8")]
    return [p.relative_to(DOCS).as_posix() for p in pages]


def _run(test_callable):
    """Run doctests through a runner that reports into the test's output."""
    failures = []

    class Runner(doctest.DocTestRunner):
        def report_failure(self, out, test, example, got):
            failures.append(f"{test.name}:{example.lineno + 1}\n>>> {example.source}"
                            f"expected:\n{example.want}got:\n{got}")

        def report_unexpected_exception(self, out, test, example, exc_info):
            failures.append(f"{test.name}:{example.lineno + 1}\n>>> {example.source}"
                            f"raised {exc_info[0].__name__}: {exc_info[1]}")

    runner = Runner(optionflags=_FLAGS)
    tried = 0
    for test in test_callable():
        runner.run(test, out=lambda s: None)
        tried += len(test.examples)
    return tried, failures


def test_pages_are_found():
    pages = _pages()
    if not pages:
        pytest.skip("no docs/ folder beside tests/ (installed without the repository)")
    assert "guide/two_apis.rst" in pages


@pytest.mark.parametrize("page", _pages())
def test_page_examples(page, tmp_path, monkeypatch):
    for module in _NEEDS.get(page, ()):
        pytest.importorskip(module)
    monkeypatch.chdir(tmp_path)  # examples that save files write here
    monkeypatch.setenv("MPLBACKEND", "Agg")
    text = (DOCS / page).read_text(encoding="utf-8")
    parser = doctest.DocTestParser()

    def tests():
        yield parser.get_doctest(text, {"__name__": "__docs__"}, page, str(DOCS / page), 0)

    tried, failures = _run(tests)
    assert tried > 0
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize(("module", "needs"), [("fastmlp.model", None),
                                               ("fastmlp.estimators", "sklearn")])
def test_docstring_examples(module, needs):
    if needs:
        pytest.importorskip(needs)
    mod = importlib.import_module(module)
    finder = doctest.DocTestFinder()
    tried, failures = _run(lambda: finder.find(mod, mod.__name__))
    assert tried > 0
    assert not failures, "\n\n".join(failures)
