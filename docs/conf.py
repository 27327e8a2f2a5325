"""Sphinx configuration of the rimclf documentation (``make docs``).

The site is the Markdown guides of ``docs/`` (read by MyST) and an API reference built from the
numpydoc docstrings (``docs/api/``). It builds offline: nothing is fetched at build time.
Intersphinx links to Python, numpy, scikit-learn and torch are off unless
``RIMCLF_DOCS_INTERSPHINX=1`` is set (then the build downloads their inventories).

``make docs`` runs ``sphinx-build -W --keep-going``: any warning fails the build. Two things that
would warn without being mistakes are handled here rather than silenced:

- scikit-learn's generated ``set_fit_request``-style methods are left out of the reference
  (their docstrings point at scikit-learn's glossary);
- fitted-attribute names inside shapes, ``of shape (n_radiomics_,)``, are escaped.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # document this checkout, whatever rimclf is installed

from rimclf import __version__  # noqa: E402

project = "rimclf"
author = "the rimclf developers"
copyright = "the rimclf developers, BSD-3-Clause"
version = release = __version__

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]
INTERSPHINX = os.environ.get("RIMCLF_DOCS_INTERSPHINX") == "1"
if INTERSPHINX:
    extensions.append("sphinx.ext.intersphinx")
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable", None),
        "sklearn": ("https://scikit-learn.org/stable", None),
        "torch": ("https://pytorch.org/docs/stable", None),
    }

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

html_theme = "alabaster"
html_title = f"rimclf {version}"
smartquotes = False  # keep "--force" and quotes as typed (options, code in prose)

# MyST: the guides are GitHub-flavoured Markdown; headings get anchors so that
# [text](page.md#a-heading) links work on GitHub and here alike.
myst_heading_anchors = 3

# autodoc + numpydoc
autodoc_default_options = {"members": True, "member-order": "bysource"}
autodoc_typehints = "none"  # the numpydoc "Parameters" sections give the types
numpydoc_show_class_members = False  # autodoc documents the methods below each class
numpydoc_class_members_toctree = False
# Types are rendered as text, escaped (no cross-references to other projects' documentation).
numpydoc_xref_param_type = True
numpydoc_xref_ignore = "all"


def _plain_aliases() -> dict[str, str]:
    """numpydoc's default type links point into other projects' docs (``float``: Python's,
    ``array_like``: numpy's glossary); without their inventories, the plain names."""
    from numpydoc.xref import DEFAULT_LINKS

    return {name: name for name in DEFAULT_LINKS}


numpydoc_xref_aliases = {} if INTERSPHINX else _plain_aliases()


def _skip_member(app, what, name, obj, skip, options):
    """Leave out scikit-learn's generated ``set_*_request`` methods (metadata routing): their
    docstrings point into scikit-learn's documentation."""
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


_SHAPE_NAME = re.compile(r"\b([A-Za-z]\w*)_(?=[,)\]])")


def _escape_shape_names(app, what, name, obj, options, lines):
    """Escape fitted-attribute names in shapes, ``of shape (n_radiomics_,)``, which reST would
    otherwise read as a link to a target ``n_radiomics`` (scikit-learn's ``(n_features_in_,)`` style)."""
    for i, line in enumerate(lines):
        if "of shape" in line:
            lines[i] = _SHAPE_NAME.sub(r"\1\\_", line)


#: ``[text](../path#anchor)`` in a guide: a link out of docs/, which GitHub follows but Sphinx cannot.
_OUTSIDE_LINK = re.compile(r"\[([^\]]*)\]\(\.\./([^)#\s]+)(#[^)\s]*)?\)")


def _outside_links(app, docname, source):
    """Links from the guides to files outside ``docs/``: the README is a page of the site
    (``readme.md`` includes it), other repository files are named as text."""

    def replace(match):
        text, path, anchor = match.group(1), match.group(2), match.group(3) or ""
        if path == "README.md":
            return f"[{text}](readme.md{anchor})"
        return f"{text} (`{path}` in the repository)"

    if docname != "readme":
        source[0] = _OUTSIDE_LINK.sub(replace, source[0])


def setup(app):
    app.connect("source-read", _outside_links)
    app.connect("autodoc-skip-member", _skip_member)
    # after numpydoc (priority 500), which turns the sections into reST lines
    app.connect("autodoc-process-docstring", _escape_shape_names, priority=600)
