"""Plug-ins: datasets and models that installed distributions declare as entry points reach the
`digitrec` command; names are taken once; a broken plug-in is a clear error naming it."""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from digitrec.data import DATASETS, register_dataset
from digitrec.errors import ConfigError, RegistryError
from digitrec.models import register_model
from digitrec.registry import Registry

PLUGIN = """
from digitrec.data import DatasetSpec, register_dataset

TINY = register_dataset(DatasetSpec(name="tiny-digits", classes=tuple("0123456789"), mirrors=(),
                                    sha256={sha256!r}, torchvision_name="TinyDigits"))


def tiny(num_classes=10):
    from torch import nn

    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, num_classes))
"""

ENTRY_POINTS = """
[digitrec.datasets]
tiny-digits = tinyplug:TINY
broken = tinyplug_missing:SPEC

[digitrec.models]
tiny = tinyplug:tiny
"""


def install(site: Path, name: str, entry_points: str, modules: dict[str, str] | None = None) -> Path:
    """An installed distribution as pip leaves one: modules plus a .dist-info with entry points."""
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(entry_points)
    for module, source in (modules or {}).items():
        (site / f"{module}.py").write_text(source)
    return site


def idx_gz(array: np.ndarray, path: Path) -> str:
    """Write `array` as a gzipped uint8 IDX file; the SHA-256 of its decompressed bytes."""
    raw = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">u4").tobytes() + array.tobytes()
    path.write_bytes(gzip.compress(raw))
    return hashlib.sha256(raw).hexdigest()


@pytest.fixture
def plugin(tmp_path: Path) -> tuple[Path, Path]:
    """A plug-in distribution declaring a 12-image dataset, a model and a broken dataset; and
    the data directory holding the dataset's files."""
    files = tmp_path / "data" / "tiny-digits"
    files.mkdir(parents=True)
    rng = np.random.default_rng(0)
    sha256 = {}
    for split, count in (("train", 8), ("t10k", 4)):
        images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        labels = np.arange(count, dtype=np.uint8)
        sha256[f"{split}-images-idx3-ubyte"] = idx_gz(images, files / f"{split}-images-idx3-ubyte.gz")
        sha256[f"{split}-labels-idx1-ubyte"] = idx_gz(labels, files / f"{split}-labels-idx1-ubyte.gz")
    site = install(tmp_path / "site", "digitrec-tiny-plugin", ENTRY_POINTS,
                   {"tinyplug": PLUGIN.format(sha256=sha256)})
    return site, tmp_path / "data"


NO_TORCH = """
import sys

class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "torch":
            raise ImportError(f"{name} is blocked: this is the light install")

sys.meta_path.insert(0, NoTorch())
"""


def digitrec(site: Path, *args: str, torch: bool = True) -> subprocess.CompletedProcess:
    """`python -m digitrec ARGS` (or `python ARGS` after -c) with `site` installed; without
    `torch`, as in the light install, importing torch fails."""
    paths = [site, os.environ.get("PYTHONPATH")]
    if not torch:
        (site.parent / "no-torch").mkdir(exist_ok=True)
        (site.parent / "no-torch" / "sitecustomize.py").write_text(NO_TORCH)
        paths.insert(0, site.parent / "no-torch")
    command = list(args) if args[0] == "-c" else ["-m", "digitrec", *args]
    return subprocess.run([sys.executable, *command], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(map(str, filter(None, paths))),
                               "COLUMNS": "200"})


# --- through the command line --------------------------------------------------------------

def test_help_lists_plugins_beside_the_built_in_names(plugin):
    site, _ = plugin
    data_help = digitrec(site, "data", "--help")
    assert data_help.returncode == 0, data_help.stderr
    assert "mnist, fashion-mnist, broken, tiny-digits" in " ".join(data_help.stdout.split())
    train_help = " ".join(digitrec(site, "train", "--help").stdout.split())
    assert "baseline, fast, accurate, tiny" in train_help
    assert "fashion-mnist, broken, tiny-digits" in train_help


def test_light_install_lists_plugins_without_importing_torch(plugin):
    site, _ = plugin
    for command in ("data", "predict"):
        result = digitrec(site, command, "--help", torch=False)
        assert result.returncode == 0, result.stderr
    assert "blocked" in digitrec(site, "-c", "import torch", torch=False).stderr
    data_help = digitrec(site, "data", "--help", torch=False).stdout
    assert "mnist, fashion-mnist, broken, tiny-digits" in data_help


def test_plugin_dataset_works_with_digitrec_data(plugin):
    site, data_dir = plugin
    result = digitrec(site, "data", "--dataset", "tiny-digits", "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[2].split()[:4] == ["train", "8", "1", "1"]
    assert result.stdout.splitlines()[3].split()[:2] == ["test", "4"]


def test_train_resolves_plugin_model_and_dataset_by_name(plugin):
    site, _ = plugin
    result = digitrec(site, "-c", "\n".join([
        "from digitrec.cli import build_parser, train_config",
        "from digitrec.models import create_model",
        "args = build_parser().parse_args(['train', '--model', 'tiny', '--dataset', 'tiny-digits'])",
        "config = train_config(args)",
        "print(config.model, config.dataset, type(create_model(config.model)).__name__)",
    ]))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["tiny", "tiny-digits", "Sequential"]


def test_plugins_are_imported_only_when_their_name_is_looked_up(plugin):
    site, _ = plugin
    result = digitrec(site, "-c", "\n".join([
        "import sys",
        "from digitrec.data import get_dataset, list_datasets",
        "print('tinyplug' in sys.modules, 'tiny-digits' in list_datasets(), 'tinyplug' in sys.modules)",
        "get_dataset('tiny-digits')",
        "print('tinyplug' in sys.modules)",
    ]))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True", "False", "True"]


def test_broken_plugin_is_one_clear_error_naming_its_entry_point(plugin):
    site, data_dir = plugin
    result = digitrec(site, "data", "--dataset", "broken", "--data-dir", str(data_dir))
    assert result.returncode == 1
    assert result.stderr == (
        "digitrec data: error: entry point 'broken = tinyplug_missing:SPEC' in digitrec.datasets "
        "of digitrec-tiny-plugin 1.0 cannot be loaded: ModuleNotFoundError: No module named "
        "'tinyplug_missing'\n")


def test_plugin_taking_a_built_in_name_is_an_error_even_in_help(tmp_path: Path):
    site = install(tmp_path, "digitrec-clash", "[digitrec.datasets]\nmnist = clash:MNIST\n")
    result = digitrec(site, "data", "--help")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert ("dataset 'mnist' is registered twice: by digitrec.data and by entry point "
            "'mnist = clash:MNIST' in digitrec.datasets of digitrec-clash 1.0") in result.stderr


# --- in code ---------------------------------------------------------------------------

def test_registering_a_taken_name_names_who_took_it():
    with pytest.raises(RegistryError, match=r"'mnist' is registered twice: by digitrec.data and by"):
        register_dataset(DATASETS["mnist"])
    with pytest.raises(RegistryError, match=r"by digitrec.models.baseline and by test_plugins"):
        register_model("baseline")(lambda: None)


def things(site: Path, monkeypatch: pytest.MonkeyPatch) -> Registry[object]:
    """A registry of its own group, with `site` installed, and one thing registered in code."""
    monkeypatch.syspath_prepend(str(site))
    registry = Registry("thing", "digitrec.test-things", unknown=ConfigError,
                        check=lambda name, value: None if isinstance(value, int) else "is no int")
    registry.register("one", 1, owner="this test")
    return registry


def test_plugin_objects_are_checked_and_loaded_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    site = install(tmp_path, "some-things", "[digitrec.test-things]\ntwo = somethings:TWO\n"
                                            "text = somethings:TEXT\n",
                   {"somethings": "TWO = 2\nTEXT = 'two'\n"})
    registry = things(site, monkeypatch)
    assert registry.names() == ["one", "text", "two"]
    assert registry.get("two") == 2
    assert registry.owners["two"] == "entry point 'two = somethings:TWO' in digitrec.test-things " \
                                     "of some-things 1.0"
    sys.modules["somethings"].TWO = 3  # a second lookup does not import it again
    assert registry.get("two") == 2 and registry.names() == ["one", "two", "text"]
    with pytest.raises(RegistryError, match=r"'text = somethings:TEXT' .* is no int"):
        registry.get("text")
    with pytest.raises(ConfigError, match=r"unknown thing 'three'; choose one of: one, two, text"):
        registry.get("three")


def test_two_plugins_declaring_one_name_are_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    install(tmp_path, "first-things", "[digitrec.test-things]\ntwo = first:TWO\n")
    install(tmp_path, "other-things", "[digitrec.test-things]\ntwo = other:TWO\n")
    registry = things(tmp_path, monkeypatch)
    with pytest.raises(RegistryError, match=r"'two' is registered twice: by entry point "
                                            r"'two = .*:TWO' .* and by entry point"):
        registry.names()
    with pytest.raises(RegistryError):  # still, not only the first time
        registry.get("two")
