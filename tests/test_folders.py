"""Image-folder datasets: loading through `preprocess`, the cache, bad files, writers and the
held-out part; training on a mix of sources, fine-tuning with --init, evaluation per folder."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from digitrec import folders
from digitrec.checkpoint import load_model
from digitrec.cli import main
from digitrec.config import TrainConfig
from digitrec.errors import ConfigError, DataUnavailableError
from digitrec.evaluate import evaluate_folders, predict_logits
from digitrec.files import read_jsonl
from digitrec.folders import holdout_mask, load_folder, source_name, writer_of
from digitrec.preprocess import preprocess
from digitrec.train import Part, Tensors, epoch_order, train

TINY = TrainConfig(model="fast", epochs=1, batch_size=64, optimizer="sgd", lr=0.05,
                   schedule="onecycle", train_size=2000, val_size=0)


def write_digits(root: Path, images: np.ndarray, labels: np.ndarray, writers: int = 0,
                 transform=lambda image, i: image, suffix: str = ".png") -> list[Path]:
    """Save 28x28 uint8 digits as `root/<label>/<label>-<writer>-<i>.png` (or `img<i>` when
    there are no writers), each through `transform`."""
    paths = []
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        name = f"{label}-w{i % writers:02d}-{i:04d}" if writers else f"img{i:04d}"
        path = root / str(label) / f"{name}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        transform(Image.fromarray(image), i).save(path)
        paths.append(path)
    return paths


def varied(image: Image.Image, i: int) -> Image.Image:
    """Odd sizes, both polarities, grey paper: what real scans look like."""
    size = (17 + 13 * (i % 5), 23 + 7 * (i % 3))
    image = image.resize(size, Image.BILINEAR)
    if i % 2:  # dark ink on light grey paper
        return Image.eval(image, lambda v: 230 - v * 200 // 255)
    return image


@pytest.fixture
def digit_folder(mnist_test, tmp_path: Path) -> Path:
    images, labels = mnist_test
    write_digits(tmp_path / "digits", images[:120], labels[:120], writers=6, transform=varied)
    return tmp_path / "digits"


def test_a_folder_reads_as_predict_reads_each_image(digit_folder: Path):
    data = load_folder(digit_folder)
    assert data.images.shape == (120, 28, 28) and data.images.dtype == np.uint8
    first = digit_folder / data.files[0]
    assert data.files[0].startswith(f"{data.labels[0]}/")
    np.testing.assert_allclose(data.images[0] / 255, preprocess(str(first)), atol=0.5 / 255)
    assert {writer_of(f, f[0]) for f in data.files} == {f"w{k:02d}" for k in range(6)}
    assert data.has_writers and data.name == "digits"


def test_polarity_does_not_matter(mnist_test, tmp_path: Path):
    images, labels = mnist_test
    write_digits(tmp_path / "light", images[:20], labels[:20])
    write_digits(tmp_path / "dark", images[:20], labels[:20],
                 transform=lambda image, i: Image.eval(image, lambda v: 255 - v))
    light, dark = load_folder(tmp_path / "light"), load_folder(tmp_path / "dark")
    assert np.abs(light.images.astype(int) - dark.images.astype(int)).max() <= 1
    np.testing.assert_array_equal(light.labels, dark.labels)


def test_unreadable_and_blank_files_are_reported_not_dropped(digit_folder: Path):
    (digit_folder / "3" / "broken.png").write_bytes(b"not a png at all")
    Image.new("L", (30, 30), 255).save(digit_folder / "4" / "blank.png")
    messages = []
    data = load_folder(digit_folder, warn=messages.append)
    assert len(data) == 120 and len(messages) == 1
    assert "2 of 122 files left out" in messages[0]
    assert "3/broken.png" in messages[0] and "4/blank.png: no ink found" in messages[0]


def test_empty_or_misnamed_folders_are_clear_errors(tmp_path: Path):
    (tmp_path / "empty" / "7").mkdir(parents=True)
    with pytest.raises(DataUnavailableError, match="holds no image files"):
        load_folder(tmp_path / "empty")
    with pytest.raises(DataUnavailableError, match="does not exist"):
        load_folder(tmp_path / "nowhere")
    (tmp_path / "cats" / "tabby").mkdir(parents=True)
    with pytest.raises(DataUnavailableError, match=r"tabby.*not class names"):
        load_folder(tmp_path / "cats")
    (tmp_path / "bad" / "1").mkdir(parents=True)
    (tmp_path / "bad" / "1" / "x.png").write_bytes(b"junk")
    with pytest.raises(DataUnavailableError, match="no usable image"):
        load_folder(tmp_path / "bad")


def test_second_load_comes_from_the_cache_and_a_changed_file_is_read_again(
        digit_folder: Path, monkeypatch):
    first = load_folder(digit_folder)
    calls = []
    monkeypatch.setattr(folders, "CONVERT_CHUNK", len(first) + 1)  # one task: converted here
    monkeypatch.setattr(folders.preprocessing, "preprocess",
                        lambda blob: calls.append(1) or np.zeros((28, 28), np.float32) + 0.5)
    again = load_folder(digit_folder)
    assert calls == [] and again.fingerprint == first.fingerprint
    np.testing.assert_array_equal(again.images, first.images)
    path = digit_folder / first.files[0]
    Image.open(path).rotate(90).save(path)
    changed = load_folder(digit_folder)
    assert changed.fingerprint != first.fingerprint and len(calls) == 120


def test_held_out_part_is_whole_writers_or_single_images(digit_folder: Path, tmp_path: Path,
                                                         mnist_test):
    data = load_folder(digit_folder)
    held = holdout_mask(data, 0.3, seed=1)
    held_writers = {w for w, h in zip(data.writers, held, strict=True) if h}
    assert len(held_writers) == 2  # ceil(0.3 * 6)
    assert not held_writers & {w for w, h in zip(data.writers, held, strict=True) if not h}
    np.testing.assert_array_equal(held, holdout_mask(data, 0.3, seed=1))
    images, labels = mnist_test
    write_digits(tmp_path / "plain", images[:50], labels[:50])
    plain = load_folder(tmp_path / "plain")
    assert not plain.has_writers and holdout_mask(plain, 0.1, seed=1).sum() == 5
    assert source_name(tmp_path / "cvl" / "train") == "cvl-train"


def test_weighted_sources_are_drawn_as_often_as_their_weight():
    data = Tensors(torch.zeros(300, 1, 28, 28, dtype=torch.uint8), torch.zeros(300, dtype=torch.long),
                   (Part("a", 200, 1.0), Part("b", 100, 2.5)))
    torch.manual_seed(0)
    order = epoch_order(data)
    assert len(order) == 450
    counts = torch.bincount(order, minlength=300)
    assert (counts[:200] == 1).all() and counts[200:].sum() == 250
    assert set(counts[200:].tolist()) == {2, 3}
    equal = Tensors(data.images, data.labels, (Part("a", 200), Part("b", 100)))
    assert sorted(epoch_order(equal).tolist()) == list(range(300))


def test_training_on_a_mix_reports_each_source(data_root: Path, digit_folder: Path,
                                               tmp_path: Path):
    config = replace(TINY, add_data=(f"{digit_folder}:3",), holdout=0.34)
    card = train(config, tmp_path / "run", data_root, log=lambda *_: None)
    names = [s["name"] for s in card["data"]["sources"]]
    assert names == ["mnist", "digits"]
    folder = card["data"]["sources"][1]
    assert folder["images"] == 120 and folder["train_images"] + folder["val_images"] == 120
    assert folder["weight"] == 3.0 and len(folder["val_writers"]) == 3 and folder["writers"] == 6
    assert len(folder["fingerprint"]) == 64
    assert card["data"]["train_images"] == 2000 + folder["train_images"]
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert set(rows[-1]["val_sources"]) == {"digits"}
    assert rows[-1]["val_sources"]["digits"]["images"] == folder["val_images"]
    assert "calibration" in card or card["metrics"]["val_accuracy"] == 1.0
    if "calibration" in card:  # the held-out calibration error, before and after
        assert 0 <= card["calibration"]["ece_after"] <= 1 and "ece_before" in card["calibration"]
    assert f"--add-data {digit_folder}:3" in card["command"]


def test_an_unknown_weight_or_holdout_is_a_config_error(digit_folder: Path):
    with pytest.raises(ConfigError, match="weight"):
        TrainConfig(add_data=(f"{digit_folder}:0",))
    with pytest.raises(ConfigError, match="holdout"):
        TrainConfig(holdout=1.0)


def rotated(image: Image.Image, i: int) -> Image.Image:
    """A writing style the base model has never seen: every digit turned a quarter."""
    return image.rotate(90)


def test_init_fine_tunes_towards_the_new_writing(data_root: Path, mnist_test, tmp_path: Path):
    images, labels = mnist_test
    base = tmp_path / "base"
    train(replace(TINY, train_size=3000), base, data_root, log=lambda *_: None)
    write_digits(tmp_path / "mine", images[:300], labels[:300], transform=rotated)
    write_digits(tmp_path / "check", images[300:500], labels[300:500], transform=rotated)
    tuned = tmp_path / "tuned"
    assert main(["train", "--init", str(base), "--add-data", f"{tmp_path / 'mine'}:4",
                 "--train-size", "1000", "--val-size", "0", "--epochs", "3", "--lr", "0.02",
                 "--data-dir", str(data_root), "--out", str(tuned)]) == 0
    card = json.loads((tuned / "card.json").read_text())
    assert card["model"] == "fast" and card["init"]["run"] == str(base)
    check = load_folder(tmp_path / "check")
    before, after = (evaluate_folders([run], [tmp_path / "check"])["sources"][0]["accuracy"]
                     for run in (base, tuned))
    assert after > before + 0.2, (before, after)
    model, _ = load_model(tuned)
    logits = predict_logits(model, torch.from_numpy(check.images).unsqueeze(1))
    assert (logits.argmax(1).numpy() == check.labels).mean() == pytest.approx(after)
    # fine-tuning keeps the BatchNorm statistics of the base (its batches are mostly new digits)
    assert "--freeze-norm" in card["command"]
    start, _ = load_model(base)
    norms = [(a, b) for a, b in zip(start.modules(), model.modules(), strict=True)
             if isinstance(a, torch.nn.BatchNorm2d)]
    assert norms and all(torch.equal(a.running_mean, b.running_mean)
                         and torch.equal(a.running_var, b.running_var) for a, b in norms)


def test_init_with_another_architecture_is_refused(data_root: Path, tmp_path: Path, capsys):
    base = tmp_path / "base"
    train(replace(TINY, train_size=500), base, data_root, log=lambda *_: None)
    assert main(["train", "--init", str(base), "--model", "baseline", "--out",
                 str(tmp_path / "x"), "--data-dir", str(data_root)]) == 1
    assert "holds a 'fast' model" in capsys.readouterr().err


def test_evaluate_with_data_prints_each_folder(data_root: Path, digit_folder: Path,
                                               tmp_path: Path, capsys):
    run = tmp_path / "run"
    train(replace(TINY, add_data=(str(digit_folder),)), run, data_root, log=lambda *_: None)
    other = tmp_path / "other"
    shutil.copytree(digit_folder, other)
    (other / "5" / "broken.png").write_bytes(b"junk")
    assert main(["evaluate", str(run), "--data", str(digit_folder), "--data", str(other)]) == 0
    out, err = capsys.readouterr()
    assert "1 of 121 files left out" in err
    lines = [line for line in out.splitlines()
             if line.startswith(("digits", "other")) and "confusion" not in line]
    assert len(lines) == 2 and "trained on" in lines[0] and "trained on" not in lines[1]
    assert out.count("confusion matrix") == 2
    assert main(["evaluate", str(run), "--data", str(other), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    source = report["sources"][0]
    assert source["images"] == 120 and source["left_out"] == 1
    assert sum(map(sum, source["confusion_matrix"])) == 120
    low, high = source["accuracy_ci95"]
    assert low <= source["accuracy"] <= high


def test_report_has_a_section_per_source(data_root: Path, digit_folder: Path, tmp_path: Path):
    run = tmp_path / "run"
    train(replace(TINY, add_data=(str(digit_folder),)), run, data_root, log=lambda *_: None)
    assert main(["evaluate", str(run), "--report", str(tmp_path / "report"), "--data",
                 str(digit_folder), "--robustness-images", "100"]) == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["runs"][0]["sources"][0]["name"] == "digits"
    assert set(report["runs"][0]["held_out"]) == {"digits"}
    html = (tmp_path / "report" / "report.html").read_text()
    assert "Image folders" in html and "Held-out part of each training source" in html


REAL_FOLDERS = ["usps/train", "cvl-digits/valid", "ardis-iv/train"]


@pytest.fixture
def real_subsets(data_root: Path, tmp_path: Path) -> list[Path]:
    """The first 30 images of each digit of each real source, in folders of their own."""
    subsets = []
    for name in REAL_FOLDERS:
        source = data_root / name
        if not source.is_dir():
            pytest.skip(f"{source} not found")
        target = tmp_path / name.replace("/", "-")
        for digit in range(10):
            (target / str(digit)).mkdir(parents=True)
            for path in sorted((source / str(digit)).iterdir())[:30]:
                shutil.copy(path, target / str(digit))
        subsets.append(target)
    return subsets


def test_real_sources_train_and_evaluate(data_root: Path, real_subsets: list[Path],
                                         tmp_path: Path):
    config = replace(TINY, train_size=5000, add_data=tuple(f"{p}:2" for p in real_subsets),
                     holdout=0.2)
    card = train(config, tmp_path / "run", data_root, log=lambda *_: None)
    cvl = next(s for s in card["data"]["sources"] if s["name"] == "cvl-digits-valid")
    assert cvl["writers"] >= 2 and cvl["val_writers"]
    held = card["metrics"]["val_sources"]
    assert set(held) == {p.name for p in real_subsets}
    assert all(v["accuracy"] > 0.6 for v in held.values()), held
    report = evaluate_folders([tmp_path / "run"], real_subsets)
    assert [s["images"] for s in report["sources"]] == [300, 300, 300]
    assert all("trained_on" in s for s in report["sources"])


def test_the_shipped_run_is_the_shipped_model_and_names_its_sources(mnist_test):
    from digitrec.predict import OnnxBackend, default_model, run_dir_of

    model, card = load_model(run_dir_of("shipped"))
    runtime = OnnxBackend.load(default_model())
    assert runtime.card == card
    names = [s["name"] for s in card["data"]["sources"]]
    assert names == ["mnist", "usps-train", "cvl-digits-train", "cvl-digits-valid",
                     "ardis-iv-train"]
    assert all(s["terms"] and s["train_images"] > 0 for s in card["data"]["sources"])
    assert card["calibration"]["fitted_on"] == "held-out images"
    images = mnist_test[0][:200]
    expected = predict_logits(model, torch.from_numpy(images).unsqueeze(1)).numpy()
    actual = runtime.logits(images[:, None].astype(np.float32) / 255)
    np.testing.assert_allclose(actual, expected, atol=1e-4)
