"""neo.lazy.lazy_exports: a package's names import their module on first access, once."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fresh package `lazypkg` exporting VALUE from `lazypkg.heavy` lazily."""
    root = tmp_path / "lazypkg"
    root.mkdir()
    (root / "__init__.py").write_text(
        "from neo.lazy import lazy_exports\n"
        "__getattr__ = lazy_exports(__name__, {'VALUE': 'heavy'})\n"
    )
    (root / "heavy.py").write_text("LOADS = []\nLOADS.append(1)\nVALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield importlib.import_module("lazypkg")
    for name in ("lazypkg", "lazypkg.heavy"):
        sys.modules.pop(name, None)


def test_name_imports_its_module_on_first_access_and_stays(package):
    assert "lazypkg.heavy" not in sys.modules
    assert package.VALUE == 42
    assert "VALUE" in vars(package)  # kept in the package: later lookups skip __getattr__
    assert package.VALUE == 42 and sys.modules["lazypkg.heavy"].LOADS == [1]


def test_unknown_name_raises_attribute_error_naming_the_package(package):
    with pytest.raises(AttributeError, match=r"module 'lazypkg' has no attribute 'MISSING'"):
        package.MISSING  # noqa: B018
    assert "lazypkg.heavy" not in sys.modules


def test_model_packages_export_lazily():
    from neo.models import dfine, rtdetr

    assert rtdetr.RTDETRDecoder.__module__ == "neo.models.rtdetr.decoder"
    assert dfine.DFINEDecoder.__module__ == "neo.models.dfine.decoder"
    with pytest.raises(AttributeError, match="neo.models.dfine"):
        dfine.RTDETRDecoder  # noqa: B018
