"""The documentation: README size and links, the CLI reference, Examples on every public object,
and the Examples themselves, run as doctests.

Examples that need a cohort on disk or a training run are marked ``# doctest: +SKIP``; the rest
run here on tiny arrays, tables and phantoms (a few seconds in all). ``make docs`` builds the
site from the same docstrings (Sphinx, warnings as errors).
"""

from __future__ import annotations

import argparse
import doctest
import importlib
import importlib.util
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import rimclf

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"

#: The modules of the API reference (docs/api/): every public class and function they export
#: (``__all__``, or what the module defines when it has none) needs an Examples section.
PUBLIC_MODULES = (
    "rimclf", "rimclf.features", "rimclf.classifier", "rimclf.nn", "rimclf.baselines", "rimclf.metrics",
    "rimclf.benchmark", "rimclf.tuning", "rimclf.phantom", "rimclf.cohort", "rimclf.workflows",
    "rimclf.model_files", "rimclf.outputs", "rimclf.defaults", "rimclf.errors", "rimclf.rim_model",
    "rimclf.threshold", "rimclf.feature_registry",
)
#: Public objects allowed to lack Examples for now (the test below fails once one has them).
PENDING_EXAMPLES: set[str] = set()
DOCTEST_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
_EXAMPLES = re.compile(r"^Examples\n-{8,}\n(.*?)(?=^\S[^\n]*\n-{3,}\n|\Z)", re.M | re.S)


# ------------------------------------------------------------------------------------- README
def test_readme_is_short_for_a_newcomer():
    size = len(README.read_text(encoding="utf-8").encode())
    assert size < 25_000, f"README.md is {size} bytes; move long content to docs/ (limit 25 000)"


def test_readme_keeps_its_sections_and_commands():
    text = README.read_text(encoding="utf-8")
    for command in ("make demo", "make test", "make docs"):
        assert command in text
    headings = set(re.findall(r"^## (.+)$", text, re.M))
    for heading in ("Install", "Running on your own data", "Which parts help", "Training on a GPU", "Command line",
                    "License", "Reference"):
        assert heading in headings


@pytest.mark.parametrize("page", [README, *sorted(DOCS.glob("*.md"))], ids=lambda path: path.name)
def test_install_instructions_use_the_checkout(page):
    """rimclf is not on PyPI: extras are installed from the checkout (``pip install -e ".[dask]"``)."""
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"pip install (-U )?[\"']?rimclf\b", text), f"{page.name}: rimclf is not on PyPI"


def _slug(heading: str) -> str:
    """The anchor GitHub (and MyST's heading anchors) give a heading."""
    text = re.sub(r"[`*_]|\[|\]\([^)]*\)", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return {_slug(heading) for heading in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def _markdown_pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


@pytest.mark.parametrize("page", _markdown_pages(), ids=lambda path: path.name)
def test_markdown_links_point_at_files_and_headings_that_exist(page):
    """Relative links (``[x](docs/cohort.md#sessions)``, ``[x](#outputs)``) lead somewhere real."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path_text, _, anchor = target.partition("#")
        path = (page.parent / path_text).resolve() if path_text else page
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(f"{target}: no heading #{anchor} in {path.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


# --------------------------------------------------------------------------------------- CLI
def _cli_reference():
    spec = importlib.util.spec_from_file_location("cli_reference", DOCS / "cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_up_to_date():
    expected = _cli_reference().render()
    assert (DOCS / "cli.md").read_text(encoding="utf-8") == expected, (
        "docs/cli.md is out of date: run `python docs/cli_reference.py`"
    )


def test_cli_reference_lists_every_subcommand_and_option():
    from rimclf.cli import build_parser

    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        section = text.split(f"## rimclf {name}\n", 1)
        assert len(section) == 2, f"docs/cli.md has no section for `rimclf {name}`"
        body = section[1].split("\n## ", 1)[0]
        for action in sub._actions:
            if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
                continue
            names = action.option_strings or [action.metavar or action.dest]
            for option in names:
                assert f"`{option}" in body, f"docs/cli.md: `rimclf {name}` does not list {option}"


# ---------------------------------------------------------------------------------- examples
def _public_objects() -> dict[str, object]:
    """``{"module.name": object}`` of every public class and function of :data:`PUBLIC_MODULES`."""
    objects = {}
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        names = getattr(module, "__all__", None)
        if names is None:
            names = [name for name, value in vars(module).items() if not name.startswith("_")
                     and (inspect.isclass(value) or inspect.isfunction(value))
                     and getattr(value, "__module__", None) == module_name]
        for name in names:
            value = getattr(module, name)
            if inspect.isclass(value) or inspect.isfunction(value):
                objects[f"{module_name}.{name}"] = value
    return objects


def _has_examples(value: object) -> bool:
    """Whether the docstring has a numpydoc Examples section with at least one ``>>>`` line."""
    match = _EXAMPLES.search(inspect.getdoc(value) or "")
    return bool(match) and ">>>" in match.group(1)


def test_every_public_class_and_function_has_examples():
    objects = _public_objects()
    assert len(objects) > 100  # the check really looks at the API
    missing = sorted(name for name, value in objects.items() if not _has_examples(value) and name not in PENDING_EXAMPLES)
    assert not missing, f"public objects without an Examples section: {missing}"
    done = sorted(name for name in PENDING_EXAMPLES if _has_examples(objects[name]))
    assert not done, f"these have Examples now; remove them from PENDING_EXAMPLES: {done}"


def test_examples_check_sees_a_missing_section():
    def documented():
        """Do a thing.

        Examples
        --------
        >>> 1 + 1
        2
        """

    def undocumented():
        """Do a thing.

        Examples
        --------
        Nothing runnable here.

        Notes
        -----
        >>> 1 + 1
        2
        """

    assert _has_examples(documented) and not _has_examples(undocumented)


def _modules_with_doctests() -> list[str]:
    names = ["rimclf"]
    for info in pkgutil.walk_packages(rimclf.__path__, "rimclf."):
        if info.name.endswith("__main__"):
            continue  # running the command line is not a doctest
        names.append(info.name)
    return sorted(names)


#: Modules whose examples take more than about a third of a second (they fit models or draw
#: phantoms): marked slow, so that `pytest -m "not slow"` stays under a minute.
SLOW_DOCTESTS = {"rimclf.tuning._tune", "rimclf.metrics._bootstrap", "rimclf.outputs", "rimclf.phantom._cohort",
                 "rimclf.cohort", "rimclf.benchmark._plots", "rimclf.benchmark._summary"}


@pytest.mark.parametrize("module_name", [
    pytest.param(name, marks=pytest.mark.slow) if name in SLOW_DOCTESTS else name for name in _modules_with_doctests()
])
def test_doctests(module_name):
    module = importlib.import_module(module_name)
    tests = doctest.DocTestFinder(exclude_empty=True).find(module, module_name)
    output: list[str] = []
    runner = doctest.DocTestRunner(optionflags=DOCTEST_FLAGS)
    for test in tests:
        runner.run(test, out=output.append)
    assert runner.failures == 0, "".join(output)


def test_benchmarks_smote_network_example_gets_the_inputs_it_uses():
    # the example once chained the default LesionFeaturizer (rim features only) into SliceDictSMOTE
    # (neighbours on radiomics) and a network with a CNN branch (patches): fit failed at once
    text = (DOCS / "benchmarks.md").read_text(encoding="utf-8")
    block = re.search(r"```python\n(.*?)```", text[text.index("`SliceDictSMOTE` brings"):], re.S).group(1)
    namespace: dict = {}
    exec(block, namespace)  # noqa: S102 - the project's own documentation
    net = namespace["net"]
    keys = set(net["features"].extractors())
    assert net["smote"].neighbor_key in keys and "patches" in keys
    assert net["net"].get_params()["module__branches"] == "both"
