"""Dataset loading: IDX parsing, checksums, local layouts, decoded cache, mirror downloads."""

from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from digitrec import data
from digitrec.data import DatasetSpec, load_split, parse_idx, register_dataset
from digitrec.errors import DataIntegrityError, DataUnavailableError

MNIST_TEST_IMAGES_SHA = data.DATASETS["mnist"].sha256["t10k-images-idx3-ubyte"]


def idx_bytes(array: np.ndarray, code: int) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "digitrec", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=120)


# --- IDX parsing -------------------------------------------------------------------------

def test_parse_idx_reads_uint8_and_big_endian_types():
    images = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(parse_idx(idx_bytes(images, 0x08)), images)
    ints = np.array([1, -2, 70000], dtype=">i4")
    parsed = parse_idx(idx_bytes(ints, 0x0C))
    assert parsed.dtype.isnative and parsed.tolist() == [1, -2, 70000]


@pytest.mark.parametrize("blob, message", [
    (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", "not an IDX file"),
    (b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00", "unknown IDX data type"),
    (b"\x00\x00\x08\x03" + struct.pack(">I", 2), "header is truncated"),
    (b"\x00\x00\x08\x00", "no dimensions"),
    (b"\x00\x00\x08\x01" + struct.pack(">I", 5) + b"\x00" * 4, "5 bytes"),
    (b"\x00\x00\x08\x01" + struct.pack(">I", 2) + b"\x00" * 3, "but 3 bytes follow"),
    (b"\x00", "not an IDX file"),
])
def test_parse_idx_rejects_malformed_headers(blob: bytes, message: str):
    with pytest.raises(DataIntegrityError, match=message) as info:
        parse_idx(blob, "some-file")
    assert "some-file" in str(info.value)


# --- the real files ----------------------------------------------------------------------

def test_load_real_mnist(data_root: Path):
    images, labels = load_split("mnist", "train", data_root)
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (60000,) and labels.dtype == np.int64
    assert labels[:5].tolist() == [5, 0, 4, 1, 9]
    test_images, test_labels = load_split("mnist", "test", data_root)
    assert test_images.shape == (10000, 28, 28)
    assert np.bincount(test_labels).tolist() == [980, 1135, 1032, 1010, 982,
                                                 892, 958, 1028, 974, 1009]


def test_load_fashion_mnist(data_root: Path):
    if not (data_root / "fashion-mnist").is_dir():
        pytest.skip("no fashion-mnist files")
    _, labels = load_split("fashion-mnist", "test", data_root)
    assert labels[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]


def test_torchvision_raw_layout_uncompressed(data_root: Path, tmp_path: Path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / name).write_bytes(gzip.decompress((data_root / "mnist" / f"{name}.gz").read_bytes()))
    images, labels = load_split("mnist", "test", tmp_path, allow_download=False)
    expected_images, expected_labels = load_split("mnist", "test", data_root)
    np.testing.assert_array_equal(images, expected_images)
    np.testing.assert_array_equal(labels, expected_labels)


def test_data_dir_from_environment(mnist_copy: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DIGITREC_DATA", str(mnist_copy))
    assert len(load_split("mnist", "test")[1]) == 10000


def test_recompressed_copy_is_accepted(mnist_copy: Path):
    path = mnist_copy / "mnist" / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()), compresslevel=1, mtime=1))
    assert len(load_split("mnist", "test", mnist_copy)[1]) == 10000


# --- integrity ---------------------------------------------------------------------------

def test_flipped_byte_in_gzip_stream_is_refused(mnist_copy: Path):
    path = mnist_copy / "mnist" / "t10k-images-idx3-ubyte.gz"
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    path.write_bytes(bytes(blob))
    with pytest.raises(DataIntegrityError, match=r"t10k-images-idx3-ubyte\.gz"):
        load_split("mnist", "test", mnist_copy)


def test_changed_contents_are_refused_with_expected_hash(mnist_copy: Path):
    path = mnist_copy / "mnist" / "t10k-images-idx3-ubyte.gz"
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[5000] ^= 0x01
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataIntegrityError) as info:
        load_split("mnist", "test", mnist_copy)
    assert str(path) in str(info.value) and MNIST_TEST_IMAGES_SHA in str(info.value)


def test_truncated_file_is_refused(mnist_copy: Path):
    path = mnist_copy / "mnist" / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DataIntegrityError, match=r"t10k-labels-idx1-ubyte\.gz.*corrupt or truncated"):
        load_split("mnist", "test", mnist_copy)


def test_cli_reports_corrupt_file_without_traceback(mnist_copy: Path):
    path = mnist_copy / "mnist" / "t10k-labels-idx1-ubyte.gz"
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    result = run_cli("data", "--data-dir", str(mnist_copy))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "t10k-labels-idx1-ubyte.gz" in result.stderr


# --- decoded cache -----------------------------------------------------------------------

def test_second_load_comes_from_cache_until_the_file_changes(
        mnist_copy: Path, monkeypatch: pytest.MonkeyPatch):
    first = load_split("mnist", "test", mnist_copy)
    calls = []
    original = data.verified_contents
    monkeypatch.setattr(data, "verified_contents", lambda *a: calls.append(a) or original(*a))
    second = load_split("mnist", "test", mnist_copy)
    assert calls == []  # served from the cache: no decompress, no hash
    np.testing.assert_array_equal(first[0], second[0])
    path = mnist_copy / "mnist" / "t10k-labels-idx1-ubyte.gz"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    load_split("mnist", "test", mnist_copy)
    assert [str(a[1]) for a in calls] == [str(path)]  # changed file verified again


# --- downloads ---------------------------------------------------------------------------

def test_download_falls_back_through_mirrors(
        mirror: str, tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DIGITREC_MIRRORS", ",".join([
        "http://127.0.0.1:9/", f"{mirror}/missing/", f"{mirror}/corrupt/",
        f"{mirror}/truncated/", f"{mirror}/good/"]))
    images, _ = load_split("mnist", "test", tmp_path)
    assert images.shape == (10000, 28, 28)
    written = sorted(p.name for p in (tmp_path / "mnist").iterdir())
    assert written == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]  # no temp files
    assert ((tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz").read_bytes()
            == (data_root / "mnist" / "t10k-images-idx3-ubyte.gz").read_bytes())


def test_failed_downloads_list_what_was_tried_and_write_nothing(
        mirror: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    urls = [f"{mirror}/missing/", f"{mirror}/corrupt/", f"{mirror}/truncated/"]
    monkeypatch.setenv("DIGITREC_MIRRORS", ",".join(urls))
    with pytest.raises(DataUnavailableError) as info:
        load_split("mnist", "test", tmp_path)
    message = str(info.value)
    for url in urls:
        assert f"{url}t10k-images-idx3-ubyte.gz" in message
    assert "HTTP 404" in message and "failed verification" in message
    assert "IncompleteRead" in message
    assert "--data-dir" in message and "DIGITREC_DATA" in message
    leftovers = list((tmp_path / "mnist").iterdir()) if (tmp_path / "mnist").exists() else []
    assert leftovers == []


def test_cli_offline_without_local_data_is_one_clear_paragraph(tmp_path: Path):
    result = run_cli("data", "--data-dir", str(tmp_path / "empty"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1  # one paragraph, one line
    assert "could not be downloaded" in result.stderr and "DIGITREC_DATA" in result.stderr


# --- the registry ------------------------------------------------------------------------

def test_registered_dataset_is_found_in_its_system_dir(data_root: Path, tmp_path: Path):
    system_dir = tmp_path / "system"
    system_dir.mkdir()
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (system_dir / f"{name}.gz").symlink_to(data_root / "mnist" / f"{name}.gz")
    spec = data.DATASETS["mnist"]
    register_dataset(DatasetSpec(name="mnist-copy", classes=spec.classes, mirrors=(),
                                 sha256=spec.sha256, torchvision_name="MNISTCopy",
                                 system_dirs=(str(system_dir),)))
    try:
        _, labels = load_split("mnist-copy", "test", tmp_path / "empty", allow_download=False)
    finally:
        del data.DATASETS["mnist-copy"]
    assert len(labels) == 10000


def test_unknown_dataset_and_split():
    with pytest.raises(DataUnavailableError, match="unknown dataset"):
        load_split("cifar", "test")
    with pytest.raises(ValueError, match="unknown split"):
        load_split("mnist", "validation")
