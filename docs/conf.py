"""Sphinx configuration of the etcdanyio documentation (``sphinx-build -W -b html docs out``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # document this checkout, not whatever is installed

import etcdanyio  # noqa: E402

project = "etcdanyio"
author = "etcdanyio contributors"
copyright = "etcdanyio contributors"
release = etcdanyio.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

html_theme = "furo"
html_title = f"etcdanyio {release}"

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autodoc_default_options = {"members": True, "show-inheritance": True}

# Links into the Python, anyio and trio documentation need their objects.inv inventories, fetched
# at build time. Offline (CI here has no internet beyond package registries) they cannot be
# fetched and Sphinx would warn, which -W turns into a failure: so the mapping is only set where
# the network is known to be there (Read the Docs) or asked for (ETCDANYIO_DOCS_INTERSPHINX=1).
# Without it, references to those projects render as code, unlinked; nothing else changes.
if os.environ.get("READTHEDOCS") == "True" or os.environ.get("ETCDANYIO_DOCS_INTERSPHINX") == "1":
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "anyio": ("https://anyio.readthedocs.io/en/stable", None),
        "trio": ("https://trio.readthedocs.io/en/stable", None),
    }
else:
    intersphinx_mapping = {}


def _skip_internal(
    app: object, what: str, name: str, obj: object, skip: bool, options: object
) -> bool:
    # ``from_pb`` converts a protobuf message: public by name, not part of the API.
    return skip or name == "from_pb"


def setup(app: object) -> None:
    app.connect("autodoc-skip-member", _skip_internal)  # type: ignore[attr-defined]
