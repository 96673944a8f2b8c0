"""Datasets in IDX format (MNIST, Fashion-MNIST): find, download, verify, decode, cache.

`load_split("mnist", "train")` returns uint8 images [N, 28, 28] and int64 labels [N] as numpy
arrays (`torch.from_numpy` shares their memory). Files are looked for under a data root (the
`data_dir` argument, else `$DIGITREC_DATA`, else `~/.cache/digitrec/data`) in `<root>/<dataset>/`
or torchvision's `<root>/<Name>/raw/`, compressed or not, then in the dataset's system
directories; missing files are downloaded from the dataset's mirrors into `<root>/<dataset>/`.
Every file is checked against the SHA-256 of its decompressed bytes, so faithful recompressed
copies pass and corrupt ones never get used. Decoded arrays are cached as `.npy`.

Datasets are registered by name: in code with `register_dataset(spec)`, or by an installed
plug-in, an entry point in the `digitrec.datasets` group that names a `DatasetSpec` of the
entry point's name (see `digitrec.registry`), which then works with `digitrec ... --dataset NAME`.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import os
import struct
import sys
import urllib.error
import urllib.request
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .errors import ConfigError, DataIntegrityError, DataUnavailableError
from .files import atomic_write, write_bytes, write_json
from .registry import Registry

SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
DOWNLOAD_TIMEOUT_S = 30


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset comes from and what its files must contain."""

    name: str
    classes: tuple[str, ...]
    mirrors: tuple[str, ...]
    sha256: Mapping[str, str]  # file name (no .gz) -> SHA-256 of the decompressed IDX bytes
    torchvision_name: str
    system_dirs: tuple[str, ...] = ()


def _check_plugin(name: str, value: object) -> str | None:
    """What is wrong with a plug-in's object for dataset `name`, if anything."""
    if not isinstance(value, DatasetSpec):
        return f"must name a DatasetSpec, not {type(value).__name__}"
    return None if value.name == name else f"names a DatasetSpec called {value.name!r}, not {name!r}"


_registry: Registry[DatasetSpec] = Registry("dataset", "digitrec.datasets", _check_plugin,
                                            unknown=DataUnavailableError)
DATASETS = _registry.entries  # registered so far; plug-ins join on first lookup or listing


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add a dataset to the registry (a new IDX dataset is one call); a name already
    registered is a RegistryError."""
    return _registry.register(spec.name, spec, owner=sys._getframe(1).f_globals.get("__name__", "?"))


def list_datasets() -> list[str]:
    """Names of all datasets: the built-in ones, those registered in code, then plug-ins'."""
    return _registry.names()


register_dataset(DatasetSpec(
    name="mnist",
    classes=tuple(str(d) for d in range(10)),
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    sha256={
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    torchvision_name="MNIST",
))
register_dataset(DatasetSpec(
    name="fashion-mnist",
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
             "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    sha256={
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
    torchvision_name="FashionMNIST",
    system_dirs=("/usr/share/datasets/fashion-mnist",),
))


def get_dataset(name: str) -> DatasetSpec:
    """Look a dataset up by name (loading its plug-in on first use); an unknown name is a
    DataUnavailableError that lists the known ones."""
    return _registry.get(name)


def _user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "digitrec"


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """The directory that holds (or will receive) dataset files."""
    return Path(data_dir or os.environ.get("DIGITREC_DATA") or _user_cache() / "data")


def decoded_cache_dir() -> Path:
    """Where decoded arrays are cached (`$DIGITREC_CACHE` overrides)."""
    return Path(os.environ.get("DIGITREC_CACHE") or _user_cache() / "decoded")


def mirrors(spec: DatasetSpec) -> tuple[str, ...]:
    """Download base URLs in order; `$DIGITREC_MIRRORS` (comma-separated) replaces the defaults."""
    override = os.environ.get("DIGITREC_MIRRORS")
    if override:
        return tuple(u.strip() for u in override.split(",") if u.strip())
    return spec.mirrors


def search_dirs(spec: DatasetSpec, root: Path) -> list[Path]:
    """Directories searched for the dataset's files, in order."""
    return [root / spec.name, root / spec.torchvision_name / "raw", *map(Path, spec.system_dirs)]


def find_file(spec: DatasetSpec, name: str, root: Path) -> Path | None:
    """The first existing copy of `name` (compressed or not) in the search directories."""
    for directory in search_dirs(spec, root):
        for candidate in (directory / f"{name}.gz", directory / name):
            if candidate.is_file():
                return candidate
    return None


def decompress(data: bytes, source: str) -> bytes:
    """Gunzip `data`; a damaged stream is a DataIntegrityError naming `source`."""
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise DataIntegrityError(f"{source} is corrupt or truncated: {e}") from None


def verified_contents(data: bytes, source: str, expected_sha256: str) -> bytes:
    """The decompressed IDX bytes of a file's contents, checked against the expected SHA-256."""
    raw = decompress(data, source) if source.endswith(".gz") or data[:2] == b"\x1f\x8b" else data
    actual = hashlib.sha256(raw).hexdigest()
    if actual != expected_sha256:
        raise DataIntegrityError(
            f"{source} failed its checksum: SHA-256 of its contents is {actual}, expected "
            f"{expected_sha256}. The file is damaged or not the original; delete it and "
            "run `digitrec data` again, or replace it with a good copy.")
    return raw


_IDX_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode an IDX file (magic 0x0000, type code, ndim, big-endian uint32 dims, data)."""
    if len(data) < 4 or data[0:2] != b"\0\0":
        raise DataIntegrityError(f"{source} is not an IDX file (magic number {data[:4].hex()!r})")
    if data[2] not in _IDX_DTYPES:
        raise DataIntegrityError(f"{source}: unknown IDX data type code 0x{data[2]:02x}")
    dtype, ndim = np.dtype(_IDX_DTYPES[data[2]]), data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DataIntegrityError(f"{source}: IDX header is truncated or has no dimensions")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    size = int(np.prod(dims)) * dtype.itemsize
    if len(data) - header != size:
        raise DataIntegrityError(
            f"{source}: IDX header says shape {dims} ({size} bytes) "
            f"but {len(data) - header} bytes follow")
    return np.frombuffer(data, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def _fetch(url: str, label: str) -> bytes:
    """GET `url` into memory with a progress bar; a short body is an error."""
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
        total = int(response.headers.get("Content-Length") or 0)
        chunks = []
        with tqdm(total=total or None, unit="B", unit_scale=True, desc=label,
                  leave=False, disable=None) as bar:
            while chunk := response.read(1 << 16):
                chunks.append(chunk)
                bar.update(len(chunk))
    data = b"".join(chunks)
    if total and len(data) != total:
        raise http.client.IncompleteRead(data, total - len(data))
    return data


def download(spec: DatasetSpec, name: str, dest_dir: Path) -> Path:
    """Fetch `name`.gz from the first mirror that serves a verified copy; write it atomically."""
    failures = []
    for base in mirrors(spec):
        url = base.rstrip("/") + f"/{name}.gz"
        try:
            data = _fetch(url, f"{spec.name}/{name}.gz")
            verified_contents(data, url, spec.sha256[name])
        except DataIntegrityError:
            failures.append(f"{url} (failed verification: checksum or gzip error)")
            continue
        except (OSError, http.client.HTTPException, ValueError) as e:
            failures.append(f"{url} ({_reason(e)})")
            continue
        path = dest_dir / f"{name}.gz"
        write_bytes(path, data)
        return path
    raise DataUnavailableError(
        f"{spec.name} file {name}.gz is not on disk (looked in "
        f"{', '.join(str(d) for d in search_dirs(spec, dest_dir.parent))}) and could not be "
        f"downloaded: {'; '.join(failures) or 'no mirrors configured'}. If you have the files, "
        f"point digitrec at them with --data-dir DIR or DIGITREC_DATA=DIR, where DIR holds "
        f"{spec.name}/{name}.gz (or torchvision's {spec.torchvision_name}/raw/ layout); "
        "DIGITREC_MIRRORS=URL,... sets other download mirrors.")


def _reason(error: Exception) -> str:
    """A short, one-line account of why a download failed."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    text = str(getattr(error, "reason", None) or error)
    return text.splitlines()[0] if text else type(error).__name__


def locate(spec: DatasetSpec, name: str, data_dir: str | os.PathLike | None = None,
           allow_download: bool = True) -> Path:
    """Path of a local copy of `name`, downloading it first if needed and allowed."""
    root = data_root(data_dir)
    path = find_file(spec, name, root)
    if path is not None:
        return path
    if not allow_download:
        raise DataUnavailableError(
            f"{spec.name} file {name} not found under {root} and downloads are disabled")
    return download(spec, name, root / spec.name)


def load_idx(path: Path, expected_sha256: str) -> np.ndarray:
    """Verified, decoded contents of one IDX file, served from the decoded cache when fresh.

    A cache entry is keyed by the content hash and stamped with the source file's path, size
    and mtime, so a file that changes on disk is verified again.
    """
    st = path.stat()
    stamp = {"source": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    entry = decoded_cache_dir() / f"{expected_sha256}.npy"
    stamp_path = entry.with_suffix(".json")
    try:
        if json.loads(stamp_path.read_text()) == stamp:
            return np.load(entry)
    except (OSError, ValueError):
        pass  # no usable cache entry: decode below
    array = parse_idx(verified_contents(path.read_bytes(), str(path), expected_sha256), str(path))
    try:
        with atomic_write(entry) as f:
            np.save(f, array)
        write_json(stamp_path, stamp)
    except OSError:
        pass  # a read-only cache only costs speed
    return array


def load_split(dataset: str = "mnist", split: str = "train",
               data_dir: str | os.PathLike | None = None,
               allow_download: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Images (uint8 [N, 28, 28]) and labels (int64 [N]) of one split of a dataset."""
    spec = get_dataset(dataset)
    if split not in SPLIT_FILES:
        raise ConfigError(f"unknown split {split!r}; choose one of: {', '.join(SPLIT_FILES)}")
    images_name, labels_name = SPLIT_FILES[split]
    images, labels = (load_idx(locate(spec, name, data_dir, allow_download), spec.sha256[name])
                      for name in (images_name, labels_name))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataIntegrityError(
            f"{spec.name}/{split}: images {images.shape} and labels {labels.shape} do not match")
    return images, labels.astype(np.int64)


def file_checksums(dataset: str) -> dict[str, str]:
    """SHA-256 of each decompressed file: what a model card records as its data's identity."""
    return dict(get_dataset(dataset).sha256)
