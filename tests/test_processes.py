"""Work spread over forked processes gives what a plain loop gives, in the same order, for
folders of images, synthetic lines and the verifier's photographed examples."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digitrec import folders, reader_model, verifier
from digitrec.processes import forked_map


def one_worker(monkeypatch: pytest.MonkeyPatch, module) -> None:
    """Make `module` call `forked_map` with a single worker: the plain loop."""
    monkeypatch.setattr(module, "forked_map",
                        lambda work, items, workers=0, chunksize=1: map(work, items))


def test_results_come_in_order_from_other_processes():
    offset = 7  # a closure: the workers inherit it, nothing pickles it
    results = list(forked_map(lambda item: (item + offset, os.getpid()), list(range(40)),
                              workers=2, chunksize=5))
    assert [value for value, _ in results] == [item + offset for item in range(40)]
    assert {pid for _, pid in results} - {os.getpid()}


def test_one_task_or_one_worker_runs_here():
    for items, workers, chunksize in [(list(range(5)), 2, 5), (list(range(40)), 1, 5), ([], 0, 1)]:
        pids = set(forked_map(lambda _: os.getpid(), items, workers, chunksize))
        assert pids <= {os.getpid()}


def test_an_error_in_a_worker_reaches_the_caller():
    def work(item: int) -> int:
        if item == 13:
            raise ValueError("thirteen")
        return item

    with pytest.raises(ValueError, match="thirteen"):
        list(forked_map(work, list(range(20)), workers=2, chunksize=2))


def test_a_folder_is_converted_as_one_at_a_time(tmp_path: Path, mnist_test,
                                               monkeypatch: pytest.MonkeyPatch):
    images, labels = mnist_test
    for i in range(30):
        (tmp_path / str(labels[i])).mkdir(exist_ok=True)
        Image.fromarray(255 - images[i]).save(tmp_path / str(labels[i]) / f"{i}.png")
    (tmp_path / "3" / "broken.png").write_bytes(b"not an image")
    Image.new("L", (20, 20), 255).save(tmp_path / "5" / "blank.png")
    files = [path for path, _ in folders.list_images(tmp_path, folders.DIGITS)]
    monkeypatch.setattr(folders, "CONVERT_CHUNK", 2)
    parallel = folders.convert_all(tmp_path, files, folders.preprocessing.preprocess, (28, 28))
    one_worker(monkeypatch, folders)
    serial = folders.convert_all(tmp_path, files, folders.preprocessing.preprocess, (28, 28))
    np.testing.assert_array_equal(parallel[0], serial[0])
    np.testing.assert_array_equal(parallel[1], serial[1])
    assert parallel[2] == serial[2] and len(parallel[2]) == 2 and len(parallel[0]) == 30


def test_synthetic_lines_do_not_depend_on_the_workers(mnist_test,
                                                      monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(reader_model, "CHUNK", 4)
    pool = reader_model.DigitPool(*mnist_test)
    one = reader_model.synthetic_lines(pool, 10, seed=5, workers=1)
    two = reader_model.synthetic_lines(pool, 10, seed=5, workers=2)
    np.testing.assert_array_equal(one[0], two[0])
    assert one[1] == two[1] and len(one[1]) == 10


def test_photographed_examples_do_not_depend_on_the_workers(mnist_test,
                                                            monkeypatch: pytest.MonkeyPatch):
    images = mnist_test[0][:80]
    monkeypatch.setattr(verifier, "PHOTO_CHUNK", 8)
    parallel = verifier.photographed(images, np.random.default_rng(3))
    one_worker(monkeypatch, verifier)
    serial = verifier.photographed(images, np.random.default_rng(3))
    np.testing.assert_array_equal(parallel, serial)
    assert parallel.shape == (80, 28, 28)
    assert not np.array_equal(parallel, verifier.photographed(images, np.random.default_rng(4)))
