"""The number reader: reading whole lines (separators, dashes, underlines, form fields), its
input pipeline, CTC decoding, number folders, training, the shipped asset and the benchmark."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digitrec.errors import DataUnavailableError, ModelError
from digitrec.folders import held_out
from digitrec.lines import DigitPool, compose_ink, random_number, render_line
from digitrec.number_folders import held_out_files, load_numbers, page_of, read_labels
from digitrec.predict import Predictor, load_reader
from digitrec.reader import (
    BLANK,
    HEIGHT,
    KIND,
    STEP,
    VIEWS,
    WIDTH,
    DigitRead,
    Line,
    _long_runs,
    clean_field,
    decode,
    digit_inks,
    field_box,
    line_of,
    number_of,
    views,
    writing_of,
)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def test_pool(mnist_test) -> DigitPool:
    images, labels = mnist_test
    return DigitPool(images, labels)


def scan(ink: np.ndarray, page: tuple[int, int] | None = None, at: tuple[int, int] = (10, 10),
         margin: int = 0, ruled: bool = False) -> Image.Image:
    """White-on-black ink as dark ink on a light page, optionally a form field: a black
    scanner margin at the left and ruled lines across."""
    h, w = ink.shape
    width, height = page or (w + 2 * at[0], h + 2 * at[1])
    gray = np.full((height, width), 0.92, np.float32)
    region = gray[at[1]:at[1] + h, at[0]:at[0] + w]
    region -= 0.8 * ink
    if ruled:
        gray[4:6] = gray[-6:-4] = 0.3
        gray[:, width - 8:width - 6] = 0.3
    gray[:, :margin] = 0.03
    return Image.fromarray((np.clip(gray, 0, 1) * 255).astype(np.uint8))


def test_a_line_becomes_the_readers_input(test_pool):
    ink = compose_ink("1990", test_pool, np.random.default_rng(0), 40)
    line = line_of(scan(ink))
    assert line.input.shape == (HEIGHT, WIDTH) and line.input.max() > 0.9
    x0, y0, x1, y1 = line.box
    assert abs(x0 - 10) <= 2 and abs(y0 - 10) <= 2  # the box is the writing's, in page pixels
    assert abs(x1 - (10 + ink.shape[1])) <= 2 and abs(y1 - (10 + ink.shape[0])) <= 2
    assert line_of(Image.new("L", (80, 30), 255)) is None


def test_a_form_field_is_cropped_to_the_writing(test_pool):
    ink = compose_ink("57", test_pool, np.random.default_rng(1), 30)
    width = 90 + ink.shape[1] + 30
    field = scan(ink, page=(width, 200), at=(90, 90), margin=60, ruled=True)
    gray = np.asarray(field, np.float32) / 255
    x0, _, x1, _ = field_box(gray)
    assert 60 <= x0 <= 75 and x1 == width  # the black margin and its seam are cut off
    line = line_of(field)
    bx0, by0, bx1, by1 = line.box
    assert abs(bx0 - 90) <= 3 and abs(by0 - 90) <= 3
    assert abs(bx1 - (90 + ink.shape[1])) <= 3 and abs(by1 - (90 + ink.shape[0])) <= 3


def test_shading_at_the_sides_of_a_photo_is_not_a_margin(test_pool):
    ink = compose_ink("4812", test_pool, np.random.default_rng(2), 40)
    even = scan(ink, at=(4, 30))
    page = np.asarray(even, np.float32) / 255
    width = page.shape[1]
    light = np.clip(np.abs(np.arange(width) - width / 2) / (width / 2) - 0.6, 0, None)
    photo = Image.fromarray((page * (1 - 0.5 * light) * 255).astype(np.uint8))  # darker sides
    x0, _, x1, _ = field_box(np.asarray(photo, np.float32) / 255)
    assert (x0, x1) == (0, width)  # no black margin, so the digits at the edges stay
    assert line_of(photo).box == line_of(even).box


@pytest.mark.parametrize("cheque", ["a_car_000552.jpg", "a_car_000622.jpg"])
def test_a_cheques_printed_pattern_is_paper_not_ink(data_root, cheque):
    # a plain band of paper above the pattern: the pattern is the paper, the writing the ink
    path = data_root / "orand-car-a" / "images" / cheque
    width, height = Image.open(path).size
    line = line_of(path)
    assert line is not None
    x0, y0, x1, y1 = line.box
    assert x1 - x0 > 0.7 * width and y1 - y0 > 0.5 * height


def test_ruled_lines_are_not_ink():
    ink = np.zeros((100, 120), np.float32)
    ink[50, :] = 1  # a ruled line across
    ink[:, 110] = 1  # a frame line down
    ink[30:60, 40:44] = 1  # a stroke
    cleaned = clean_field(ink)
    assert cleaned[50, :38].max() == 0 and cleaned[:, 110].max() == 0
    assert cleaned[30:48, 40:44].min() == 1
    assert writing_of(cleaned)[1][0] == 40


def test_a_thin_tall_stroke_is_writing_however_little_ink_it_has():
    ink = np.zeros((60, 100), np.float32)
    ink[10:50, 40:70] = 1
    ink[16:44, 46:64] = 0  # a bold 0
    ink[14:40, 20:22] = 1  # a thin 1 before it, with under 8% of its ink
    ink[30:33, 80:83] = 1  # and a speck after it
    assert writing_of(ink)[1] == (20, 10, 70, 50)


def test_a_line_is_found_through_gaps_and_tilt_but_never_across_columns():
    mask = np.zeros((100, 20), bool)
    rows = np.arange(100)
    mask[rows, 3 + rows // 50] = True  # a line down, a column further on in its lower half
    mask[40, 3] = False  # and broken for a pixel
    mask[55:, 10] = True  # the lower part of one column
    mask[:45, 11] = True  # and the upper part of the next: 90 rows, but not one run
    runs = _long_runs(mask, 85)
    assert (runs[:, 3:5] == mask[:, 3:5]).all()
    assert not runs[:, 8:14].any()


def test_strays_and_the_rest_of_ruled_lines_are_left_out():
    ink = np.zeros((120, 100), np.float32)
    ink[50:70, 20:30] = 1
    ink[52:70, 40:52] = 1
    ink[100:115, 60:75] = 1  # a blot far below the line
    ink[5:7, 10:90] = 1  # the rest of a ruled line above
    writing, box = writing_of(ink)
    assert box == (20, 50, 52, 70)
    assert writing[100:115].max() == 0 and writing[5:7].max() == 0
    assert writing_of(np.zeros((20, 20), np.float32)) is None


def test_a_thin_1_among_specks_is_writing_and_thin_ink_at_the_edge_is_not():
    ink = np.zeros((160, 70), np.float32)
    ink[55:76, 18:21] = 1  # a thin 1
    ink[55:84, 28:43] = 1  # the digit after it
    ink[::9, 50::6] = 1  # specks, which are shorter than any digit
    ink[60:110, 0:2] = 1  # the rest of a margin's edge
    writing, box = writing_of(ink)
    assert box[0] == 18 and writing[55:76, 18:21].all()
    assert writing[:, :2].max() == 0


def test_a_row_of_thin_strokes_is_writing_not_lines():
    ink = np.zeros((60, 100), np.float32)
    for x in (20, 40, 60):  # "111", written upright
        ink[10:50, x:x + 3] = 1
    assert writing_of(ink)[1] == (20, 10, 63, 50)
    ink[2:4, :] = 1  # with the rest of a ruled line above
    writing, box = writing_of(ink)
    assert box == (20, 10, 63, 50) and writing[2:4].max() == 0


def test_ctc_decoding_merges_repeats_and_drops_nothing():
    classes = [BLANK, 3, 3, BLANK, 3, 7, 7, BLANK, BLANK, 0]
    log_probs = np.log(np.full((len(classes), BLANK + 1), 0.01))
    for t, c in enumerate(classes):
        log_probs[t, c] = np.log(0.9)
    log_probs[2, 3] = np.log(0.95)
    reads = decode(log_probs)
    assert [r.digit for r in reads] == [3, 3, 7, 0]
    assert (reads[0].first, reads[0].last) == (1, 2) and reads[0].confidence == pytest.approx(0.95)
    assert reads[1].first == reads[1].last == 4
    assert reads[0].probabilities.shape == (10,) and reads[0].probabilities.argmax() == 3
    assert reads[0].presence == pytest.approx(0.95 + 9 * 0.01)  # 1 - P(nothing) at its peak


def test_a_digit_spread_over_columns_is_read_though_each_is_more_likely_nothing():
    log_probs = np.log(np.full((5, BLANK + 1), 1e-4))
    log_probs[:, BLANK] = np.log(0.9)
    log_probs[1:3, 6] = np.log(0.45)
    log_probs[1:3, BLANK] = np.log(0.55)  # nothing is likelier in each column...
    reads = decode(log_probs)  # ...but 6 in one of them or both is likelier than in neither
    assert [r.digit for r in reads] == [6] and 1 <= reads[0].first <= reads[0].last <= 2
    log_probs[3, 6], log_probs[3, BLANK] = np.log(0.45), np.log(0.55)
    log_probs[2, 6], log_probs[2, BLANK] = np.log(0.05), np.log(0.95)
    assert [r.digit for r in decode(log_probs)] == [6]  # one 6 read over three columns


def read_at(column: int, digit: int = 0, probabilities: np.ndarray | None = None) -> DigitRead:
    """A digit read at one output column, with the reader's probabilities for it."""
    if probabilities is None:
        probabilities = np.eye(10)[digit]
    return DigitRead(digit, probabilities, column, column, 0.9)


def line_with(writing: np.ndarray) -> Line:
    """A line whose writing is `writing`, at the working image's (100, 200), at scale 1."""
    h, w = writing.shape
    return Line(np.zeros((HEIGHT, WIDTH), np.float32), (100, 200, 100 + w, 200 + h), 1.0, writing)


def test_each_digit_read_gets_its_own_ink():
    writing = np.zeros((40, 100), np.float32)
    writing[5:35, 10:26] = 1  # a digit centred near column 18
    writing[5:35, 50:70] = 1  # and one near 60
    writing[30:32, 26:50] = 1  # a stroke that joins them
    writing[20:22, 38:40] = 1  # a speck between them
    writing[0:40, 96:97] = 1  # the rest of a ruled line at the right
    line = line_with(writing)
    reads = [read_at(4), read_at(14)]  # centres (4 + 0.5) * STEP = 18 and 58
    first, second = digit_inks(line, reads)
    assert first[5:35, 10:26].all() and not first[:, 50:].any()
    assert second[5:35, 50:70].all() and not second[:, :38].any()
    assert first[30:32, 26:38].all() and second[30:32, 38:50].all()  # the joining stroke, cut
    assert not first[20:22, 38:40].any() and not second[20:22, 38:40].any()  # the speck: dropped
    assert not second[:, 96].any()  # and the ruled line
    assert line.digit_box(reads[0], first) == (110, 205, 138, 235)  # in the working image
    x0, x1 = line.span(14, 14)  # a digit without ink of its own: its columns, the line's rows
    assert line.digit_box(reads[1], np.zeros_like(writing)) == (x0, 200, x1, 240)
    assert digit_inks(line, []) == []


def test_a_stroke_goes_whole_to_the_digit_it_spans_and_far_pieces_are_dropped():
    writing = np.zeros((40, 130), np.float32)
    writing[5:30, 10:26] = 1  # a digit centred near column 18
    writing[5:30, 50:70] = 1  # one near 58
    writing[28:30, 30:50] = 1  # with a tail reaching past the middle between them
    writing[5:30, 112:120] = 1  # and ink far from both
    first, second = digit_inks(line_with(writing), [read_at(4), read_at(14)])
    assert second[28:30, 30:50].all() and not first[:, 30:].any()
    assert not second[:, 100:].any()


def test_the_digit_model_reads_each_digit_again(monkeypatch):
    predictor = Predictor()
    sure_seven = np.full((1, 10), 0.001, np.float32)
    sure_seven[0, 7] = 0.991
    monkeypatch.setattr(predictor.backend, "probabilities", lambda batch: sure_seven)
    unsure = np.full(10, 0.01)
    unsure[1], unsure[7] = 0.5, 0.42
    reads = [read_at(4, 1, unsure), read_at(14, 1, unsure)]
    ink = np.zeros((40, 100), np.float32)
    ink[5:35, 10:26] = 1
    mixed = predictor._read_again(reads, [ink, np.zeros_like(ink)])
    assert mixed[0].argmax() == 7 and mixed[0].sum() == pytest.approx(1)  # the digit model decides
    np.testing.assert_allclose(mixed[1], unsure / unsure.sum(), rtol=1e-5)  # no ink: the reader's
    sure_one = np.eye(10)[1] * 0.99 + 0.001
    assert predictor._read_again([read_at(4, 1, sure_one)], [ink])[0].argmax() == 1


def test_synthetic_lines_are_reproducible(test_pool):
    def draw(seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return np.asarray(render_line(random_number(rng), test_pool, rng))

    np.testing.assert_array_equal(draw(3), draw(3))
    assert not np.array_equal(draw(3), draw(4))
    with pytest.raises(ValueError, match="every digit"):
        DigitPool(np.zeros((2, 28, 28), np.uint8), np.array([1, 2]))


def digits_ink(number: str, pool: DigitPool, rng: np.random.Generator) -> np.ndarray:
    """The digits of `number` side by side (tight MNIST crops, 2-6 px apart), as float ink."""
    crops = []
    for char in number:
        digit = pool.by_digit(rng, int(char)).astype(np.float32) / 255
        cols = np.flatnonzero(digit.max(0) > 0.1)
        crops.append(np.pad(digit[:, cols[0]:cols[-1] + 1], ((0, 0), (0, int(rng.integers(2, 7))))))
    return np.concatenate(crops, axis=1)


def with_marks(pool: DigitPool, number: str, marks: str, rng: np.random.Generator) -> Image.Image:
    """A number written with thousands separators (dots), with "-" a trailing dash and with
    "_" an underline, scanned at 3x."""
    groups = [number[max(0, i - 3):i] for i in range(len(number), 0, -3)][::-1]
    dot = np.zeros((28, 8), np.float32)
    dot[22:26, 2:6] = 1
    dash = np.zeros((28, 16), np.float32)
    dash[14:16, 2:14] = 1
    pieces = []
    for k, group in enumerate(groups):
        pieces.append(digits_ink(group, pool, rng))
        if k < len(groups) - 1:
            pieces.append(dot)
    if "-" in marks:
        pieces.append(dash)
    ink = np.pad(np.concatenate(pieces, axis=1), ((0, 5), (0, 0)))
    if "_" in marks:
        ink[-3:-1, 2:-2] = 1
    ink = np.asarray(Image.fromarray(ink).resize((ink.shape[1] * 3, ink.shape[0] * 3)))
    return scan(np.clip(ink, 0, 1))


def test_a_line_is_read_in_views_that_keep_its_columns(test_pool):
    line = line_of(render_line("4071", test_pool, np.random.default_rng(3)))
    seen = views(line.input)
    assert seen.shape == (VIEWS, HEIGHT, WIDTH) and np.array_equal(seen[0], line.input)
    assert np.array_equal(seen[1][:-1], line.input[1:]) and not seen[1][-1].any()  # a row up
    assert np.array_equal(seen[2][1:], line.input[:-1]) and not seen[2][0].any()  # a row down
    bold, bright = seen[3], seen[4]
    assert (bold >= line.input).all() and (bold > 0).sum() > (line.input > 0).sum()
    assert (bright >= line.input).all() and np.array_equal(bright > 0, line.input > 0)
    columns = line.input.any(0).nonzero()[0]
    for view in (seen[1], seen[2], bright):
        assert np.array_equal(view.any(0).nonzero()[0], columns)
    # one line alone or among others, it reads the same
    reader = Predictor().reader
    others = [line_of(render_line(n, test_pool, np.random.default_rng(4))).input
              for n in ("58", "123456")]
    together = reader.decode_all(np.stack([others[0], line.input, others[1]]))
    assert number_of(together[1]) == number_of(reader.read(line))
    assert reader.log_probs(line.input[None]).shape == (1, WIDTH // STEP, BLANK + 1)


def test_the_shipped_reader_reads_lines_with_separators_dashes_and_underlines(test_pool):
    predictor = Predictor()
    rng = np.random.default_rng(11)
    numbers = [str(n) for n in rng.integers(1_000, 9_999_999, 30)]
    right = 0
    for k, number in enumerate(numbers):
        image = with_marks(test_pool, number, ["", "-", "_", "-_"][k % 4], rng)
        right += predictor.predict_number(image).number == number
    # a margin below what the shipped reader reads of these 30: marks or not, it reads most
    assert right >= 24


def test_a_single_digit_is_one_digit(mnist_test):
    images, labels = mnist_test
    predictor = Predictor()
    for k in range(10):
        number = predictor.predict_number(scan(np.asarray(
            Image.fromarray(images[k]).resize((112, 112)), np.float32) / 255))
        assert number.number == str(labels[k])
        assert len(number.digits) == 1 and number.digits[0].box is not None


def test_the_number_contract(test_pool):
    result = Predictor().predict_number(with_marks(test_pool, "1990", "-", np.random.default_rng(5)))
    body = result.to_dict()
    assert set(body) == {"number", "confidence", "digits"} and body["number"] == "1990"
    assert body["confidence"] == pytest.approx(np.prod([d["confidence"] for d in body["digits"]]))
    xs = [d["box"][0] for d in body["digits"]]
    assert xs == sorted(xs)
    ends = [d["box"][2] for d in body["digits"]]
    assert all(end <= start + 3 for end, start in zip(ends[:-1], xs[1:], strict=True))
    assert len({(d["box"][1], d["box"][3]) for d in body["digits"]}) > 1  # each its ink's rows
    for digit in body["digits"]:
        assert digit["status"] == "ok" and len(digit["probabilities"]) == 10
        assert digit["top_k"][0]["digit"] == digit["digit"]


def test_the_shipped_reader_card(data_root: Path):
    reader = load_reader()
    card = reader.card
    assert card["kind"] == KIND and card["command"].startswith("digitrec train-reader")
    names = {s["name"] for s in card["sources"]}
    assert {"orand-car-a", "danish-rows"} <= names
    for source in card["sources"]:
        assert len(source["fingerprint"]) == 64 and source["held_out"] > 0 and source["terms"]
    # the card's held-out figure is what the file read on the folder's held-out part through
    # the crop of its training; the crop may change since, but must not read fewer
    cheques = load_numbers(data_root / "orand-car-a")
    held = held_out(cheques.pages, card["config"]["holdout"])
    read = [number_of(r) for r in reader.decode_all(cheques.inputs[held] / np.float32(255))]
    right = sum(r == n for r, n in zip(read, np.array(cheques.numbers)[held], strict=True))
    assert right / held.sum() >= card["metrics"]["orand-car-a"]["exact"] - 1e-9
    assert card["metrics"]["orand-car-a"]["lines"] == held.sum()
    # the training renderer's own lines, many small and blurred, are harder than real ones:
    # a lower bound
    assert card["metrics"]["synthetic (MNIST test digits)"]["exact"] >= 0.65
    with pytest.raises(ModelError, match="not a number reader"):
        load_reader(Path(__file__).parent.parent / "src/digitrec/assets/digit-verifier.onnx")
    with pytest.raises(ModelError, match="does not exist"):
        load_reader("missing.onnx")


def write_folder(root: Path, rows: list[tuple[str, str]], source: Path) -> Path:
    (root / "images").mkdir(parents=True)
    with (root / "labels.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "number"])
        for file, number in rows:
            shutil.copy(source / file, root / file)
            writer.writerow([file, number])
    return root


@pytest.fixture(scope="module")
def cheques(data_root: Path) -> list[tuple[str, str]]:
    return read_labels(data_root / "orand-car-a")[:6]


def test_number_folders(data_root: Path, cheques, tmp_path: Path):
    folder = write_folder(tmp_path / "cheques", cheques, data_root / "orand-car-a")
    (folder / "images" / "broken.jpg").write_bytes(b"not an image")
    with (folder / "labels.csv").open("a", newline="") as f:
        f.write("images/broken.jpg,12\n")
    warnings: list[str] = []
    numbers = load_numbers(folder, warn=warnings.append)
    assert len(numbers) == 6 and numbers.numbers == tuple(n for _, n in cheques)
    assert numbers.inputs.shape == (6, HEIGHT, WIDTH) and numbers.inputs.dtype == np.uint8
    assert len(warnings) == 1 and "1 of 7 files left out" in warnings[0]
    assert "images/broken.jpg" in held_out_files(numbers, 0.3)  # counted as a miss
    assert page_of("died_K2709_0099a-DM_row_id_3.Jpg") == "died_K2709_0099a-DM"
    assert page_of("a_car_000948.jpg") == ""
    (folder / "labels.csv").write_text("name,value\n")
    with pytest.raises(DataUnavailableError, match="header"):
        load_numbers(folder)
    (folder / "labels.csv").write_text("file,number\nimages/x.jpg,1.990\n")
    with pytest.raises(DataUnavailableError, match="line 2"):
        load_numbers(folder)
    with pytest.raises(DataUnavailableError, match=r"labels\.csv"):
        load_numbers(tmp_path)


def test_a_file_readable_now_but_not_in_training_does_not_move_the_held_out_part(
        data_root: Path, tmp_path: Path):
    rows = read_labels(data_root / "orand-car-a")[:12]
    folder = write_folder(tmp_path / "cheques", rows, data_root / "orand-car-a")
    with (folder / "labels.csv").open("a", newline="") as f:
        f.write("images/late.jpg,12\n")
    (folder / "images" / "late.jpg").write_bytes(b"not an image yet")
    before = held_out_files(load_numbers(folder), 0.3)  # late.jpg left out, as in training
    shutil.copy(data_root / "orand-car-a" / rows[0][0], folder / "images" / "late.jpg")
    now = load_numbers(folder)
    assert not now.left_out
    assert sorted(held_out_files(now, 0.3, left_out=["images/late.jpg"])) == sorted(before)


def test_a_form_folder_is_held_out_by_page(data_root: Path):
    rows = load_numbers(data_root / "danish-rows")
    mask_files = set(held_out_files(rows, 0.25))
    held_pages = {page_of(f) for f in mask_files}
    kept_pages = {p for f, p in zip(rows.files, rows.pages, strict=True) if f not in mask_files}
    assert held_pages and not held_pages & kept_pages


def test_train_reader_writes_a_reader_that_learns(data_root: Path, cheques, tmp_path: Path):
    from digitrec.reader_model import ReaderConfig, train_reader

    folder = write_folder(tmp_path / "cheques", cheques, data_root / "orand-car-a")
    out = tmp_path / "reader.onnx"
    config = ReaderConfig(lines=(f"{folder}:2",), synthetic=1000, epochs=2, holdout=0.3)
    card = train_reader(config, out, data_dir=data_root, log=lambda *_: None)
    reader = load_reader(out)
    assert reader.card["sources"][0]["held_out"] == 2 and reader.card["sources"][0]["weight"] == 2
    assert reader.card["sources"][0]["left_out_files"] == []
    assert card["history"][-1]["loss"] < 0.8 * card["history"][0]["loss"]
    assert card["command"] == (f"digitrec train-reader --out {out} --lines {folder}:2 "
                               f"--synthetic 1000 --epochs 2 --holdout 0.3")
    assert card["metrics"]["synthetic (MNIST test digits)"]["lines"] == 2000
    assert {s["name"] for s in card["digit_sources"]} == {"mnist"}


def test_train_reader_fine_tunes_an_exported_reader(data_root: Path, cheques, test_pool,
                                                   tmp_path: Path):
    import hashlib

    import torch

    from digitrec.export import to_onnx, with_metadata
    from digitrec.predict import DEFAULT_READER, shipped
    from digitrec.reader import INPUT, OUTPUT
    from digitrec.reader_model import (
        ReaderConfig,
        ReaderNet,
        initial_reader,
        synthetic_lines,
        train_reader,
    )

    inputs, _ = synthetic_lines(test_pool, 64, 3, workers=1)
    model = initial_reader("shipped", inputs)
    expected = load_reader(shipped(DEFAULT_READER)).session.run(
        None, {INPUT: inputs[:, None].astype(np.float32) / 255})[0]
    x = torch.from_numpy(inputs[:, None]).float().div(255)
    with torch.no_grad():  # the file's function, with batch statistics as with running ones
        assert np.abs(model.eval()(x).numpy() - expected).max() < 1e-4
        assert np.abs(model.train()(x).numpy() - expected).max() < 1e-4
    other = tmp_path / "other.onnx"
    small = to_onnx(ReaderNet((8, 16, 24, 32)), torch.rand(2, 1, HEIGHT, WIDTH), (INPUT, OUTPUT))
    other.write_bytes(with_metadata(small, {"card": {"kind": KIND}}))
    with pytest.raises(ModelError, match="another architecture"):
        initial_reader(str(other), inputs)
    with pytest.raises(ModelError, match="not a number reader"):
        initial_reader(str(shipped("digit-verifier.onnx")), inputs)
    result = subprocess.run([sys.executable, "-m", "digitrec", "train-reader", "--init",
                             str(tmp_path / "missing.onnx"), "--out", str(tmp_path / "x.onnx")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "missing.onnx" in result.stderr
    assert "Traceback" not in result.stderr

    folder = write_folder(tmp_path / "cheques", cheques, data_root / "orand-car-a")
    config = ReaderConfig(lines=(f"{folder}:2",), synthetic=300, epochs=1, lr=1e-4,
                          init="shipped", holdout=0.3)
    card = train_reader(config, tmp_path / "tuned.onnx", data_dir=data_root, log=lambda *_: None)
    base = load_reader(shipped(DEFAULT_READER)).card
    assert card["init"] == {"reader": "shipped", "command": base["command"],
                            "sha256": hashlib.sha256(shipped(DEFAULT_READER).read_bytes()
                                                     ).hexdigest()}
    assert card["history"][0]["loss"] < 2.0  # a new reader's first epoch is near 10
    assert "--init shipped" in card["command"]


def test_the_benchmark_reads_a_folder(data_root: Path, cheques, tmp_path: Path):
    folder = write_folder(tmp_path / "cheques", cheques, data_root / "orand-car-a")
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "read_numbers.py"),
                             "--folder", str(folder)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])["folders"][0]
    assert summary["part"] == "all" and summary["numbers"] == 6
    assert 0 <= summary["exact_fraction"] <= 1 and summary["p50_ms"] > 0
    assert sum(total for _, total in summary["by_length"].values()) == 6


def test_cli_and_api_read_numbers_with_the_reader(test_pool, tmp_path: Path):
    from fastapi.testclient import TestClient

    from digitrec.serve import ServeConfig, create_app

    with_marks(test_pool, "38117", "-_", np.random.default_rng(9)).save(tmp_path / "n.png")
    result = subprocess.run([sys.executable, "-m", "digitrec", "predict", str(tmp_path / "n.png"),
                             "--multi", "--json", "--save-preprocessed", str(tmp_path / "seen")],
                            capture_output=True, text=True, timeout=120)
    row = json.loads(result.stdout)
    assert row["number"] == "38117" and [d["digit"] for d in row["digits"]] == [3, 8, 1, 1, 7]
    assert Image.open(next((tmp_path / "seen").iterdir())).size == (WIDTH, HEIGHT)
    with TestClient(create_app(ServeConfig())) as client:
        body = client.post("/v1/predict?multi=true", content=(tmp_path / "n.png").read_bytes(),
                           headers={"content-type": "image/png"}).json()
    assert body["number"] == "38117" and all(len(d["box"]) == 4 for d in body["digits"])
    bad = subprocess.run([sys.executable, "-m", "digitrec", "predict", str(tmp_path / "n.png"),
                          "--multi", "--reader", "nowhere.onnx"], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 1 and "nowhere.onnx does not exist" in bad.stderr
