"""Refusing what is not a digit: the non-digits the verifier learns from, the shipped
verifier's decision in Predictor, CLI and API, the force option, marks beside a number, the
threshold in the ONNX metadata, and the benchmark."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from digitrec.errors import ModelError
from digitrec.nondigits import LETTERS, drawn, drawn_kinds, font_files, nondigits, printed
from digitrec.photos import compose_number, drawing, photograph, render_digit
from digitrec.predict import SURE, Predictor, load_verifier, refuses, shipped
from digitrec.preprocess import normalise_digit
from digitrec.reader import without_marks
from digitrec.rejection import HELD_OUT_FONTS, TRAIN_FONTS, choose_threshold, refusal
from digitrec.serve import ServeConfig, create_app

ROOT = Path(__file__).resolve().parents[1]


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor()


@pytest.fixture(scope="module")
def nondigit_images() -> dict[str, list[bytes]]:
    """Letters printed in fonts the shipped verifier never learnt from, as scans; shapes and
    scribbles drawn on the page, with a seed of their own."""
    rng = np.random.default_rng(2024)
    fonts = font_files(HELD_OUT_FONTS)
    letters = [printed(LETTERS[i % len(LETTERS)], fonts[i % len(fonts)], rng) for i in range(40)]
    scans = [photograph(Image.fromarray((255 * normalise_digit(ink)).astype(np.uint8))
                        .resize((112, 112)), 4, rng) for ink in letters]
    kinds = drawn_kinds()
    return {"letters": [png(s) for s in scans],
            "shapes": [png(drawing(drawn(kinds[i % len(kinds)], rng))) for i in range(40)],
            "scribbles": [png(drawing(drawn("scribble", rng))) for _ in range(30)]}


def test_nondigits_are_reproducible_varied_and_not_digit_lookalikes():
    assert not set(LETTERS) & set("0123456789OoQDIlijJZzSsbGBgq")
    first, again, other = nondigits(12, seed=3), nondigits(12, seed=3), nondigits(12, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(a.shape == b.shape and np.array_equal(a, b)
                   for a, b in zip(first, other, strict=True))
    assert all(ink.dtype == np.float32 and ink.min() >= 0 and ink.max() <= 1 and ink.any()
               for ink in first)
    assert all(normalise_digit(drawn(kind, np.random.default_rng(0))) is not None
               for kind in drawn_kinds())
    train, held = font_files(TRAIN_FONTS), font_files(HELD_OUT_FONTS)
    assert train and held and not set(train) & set(held)


def test_refusal_rates_and_threshold():
    digits, others = np.array([0.9, 0.95, 0.99, 0.2]), np.array([0.01, 0.05, 0.5, 0.97])
    assert choose_threshold(digits, 0.25) == 0.9  # the highest that refuses a quarter at most
    assert choose_threshold(digits, 0.0) == 0.2  # refuses none
    rates = refusal(digits, others, 0.3)
    assert rates["digits_refused"] == 0.25 and rates["others_refused"] == 0.5
    refused = [c["others_refused"] for c in rates["curve"]]
    assert refused == sorted(refused) and rates["curve"][0]["others_refused"] == 0.0


def test_the_threshold_moves_with_how_sure_the_digit_model_is():
    """A sure read is refused only far below the verifier's threshold, a doubtful one up to
    twice above it."""
    assert refuses(0.1, 0.5, 0.2) and not refuses(0.1, SURE, 0.2)  # below it: doubt refuses
    assert refuses(0.04, SURE, 0.2) and not refuses(0.06, 0.999, 0.2)  # a quarter of it
    assert refuses(0.39, 0.9, 0.2) and not refuses(0.41, 0.9, 0.2)  # twice it
    assert not refuses(0.5, 0.1, 0.2)  # digit-like enough, however unsure of which digit


def test_letters_shapes_and_scribbles_are_refused_and_digits_read(predictor, nondigit_images,
                                                                   mnist_test):
    threshold = predictor.verifier.threshold
    for name, images in nondigit_images.items():
        answers = predictor.predict(images)
        refused = [a for a in answers if a.status == "not_digit"]
        assert len(refused) >= (0.6 if name == "scribbles" else 0.9) * len(images), name
        assert all(a.digit is None and len(a.top_k) == 3 and
                   refuses(a.is_digit, a.top_k[0]["probability"], threshold) for a in refused)
    images, labels = mnist_test
    rng = np.random.default_rng(5)
    answers = predictor.predict([render_digit(images[i], rng) for i in range(200)])
    assert sum(a.status == "not_digit" for a in answers) <= 2
    assert sum(a.digit == label for a, label in zip(answers, labels, strict=False)) >= 194


def test_forcing_a_digit(predictor, nondigit_images):
    letters = nondigit_images["letters"]
    answers = predictor.predict(letters)
    index = [a.status for a in answers].index("not_digit")
    refused = answers[index]
    forced = Predictor(force_digit=True).predict([letters[index]])[0]
    assert forced.status == "ok" and forced.digit == refused.top_k[0]["digit"]
    assert forced.is_digit == refused.is_digit  # judged all the same
    accepted = predictor.accept(refused)
    assert accepted.status == "ok" and accepted.digit == forced.digit
    assert accepted.is_digit == refused.is_digit
    unsure = Predictor(min_confidence=1.0).accept(refused)
    assert unsure.status == "unknown" and unsure.digit is None


def test_threshold_and_temperature_travel_in_the_onnx_metadata(predictor):
    meta = ort.InferenceSession(str(shipped("digit-verifier.onnx"))).get_modelmeta()
    stored = {k: json.loads(v) for k, v in meta.custom_metadata_map.items()}
    assert stored["threshold"] == predictor.verifier.threshold
    assert stored["labels"] == ["pieces", "digit", "other"]
    assert stored["verifier"]["rejection"]["threshold"] == stored["threshold"]
    assert stored["verifier"]["rejection"]["digits_refused"] <= 0.005
    model = ort.InferenceSession(str(shipped("digits-accurate.onnx"))).get_modelmeta()
    card = json.loads(model.custom_metadata_map["card"])
    assert predictor.backend.temperature == card["calibration"]["temperature"] != 1.0


def test_a_verifier_without_a_threshold_is_refused(tmp_path: Path):
    onnx = pytest.importorskip("onnx")
    proto = onnx.load(str(shipped("digit-verifier.onnx")))
    kept = [p for p in proto.metadata_props if p.key != "threshold"]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    onnx.save(proto, str(tmp_path / "old.onnx"))
    with pytest.raises(ModelError, match="must be trained again"):
        load_verifier(tmp_path / "old.onnx")


def number_with_a_mark(mnist_test, mark: np.ndarray) -> tuple[Image.Image, str]:
    """Three MNIST digits and a drawn mark after them, as a photo."""
    images, labels = mnist_test
    digits = [images[i] for i in (0, 1, 2)] + [(255 * normalise_digit(mark)).astype(np.uint8)]
    line = compose_number(digits, np.random.default_rng(1))
    scale = 4
    ink = Image.fromarray(line).resize((line.shape[1] * scale, line.shape[0] * scale))
    return photograph(ink, scale, np.random.default_rng(2)), "".join(map(str, labels[:3]))


def test_without_marks_takes_out_the_pieces_the_judge_calls_marks():
    ink = np.zeros((40, 120), np.float32)
    ink[5:35, 5:25] = 1.0  # a square piece the judge calls a mark
    ink[5:35, 40:55] = 0.5  # a square piece it does not
    ink[20:24, 60:115] = 1.0  # a wide stroke: joined-up writing or a line, never judged
    ink[2, 100] = 1.0  # a speck too small to judge
    judged = []

    def judge(pieces: np.ndarray) -> np.ndarray:
        judged.append(len(pieces))
        return pieces.max(axis=(1, 2)) > 0.9

    kept = without_marks(ink, judge)
    assert judged == [2]
    assert not kept[:, :30].any() and np.array_equal(kept[:, 30:], ink[:, 30:])


@pytest.mark.parametrize("kind", ["star", "smiley", "scribble"])
def test_a_mark_beside_a_number_is_left_out(predictor, mnist_test, kind: str):
    mark = drawn(kind, np.random.default_rng(8))
    image, number = number_with_a_mark(mnist_test, mark)
    assert predictor.predict_number(image).number == number
    assert predictor.predict_number(image, force_digit=True).number != number  # read as a digit
    assert Predictor(reader="segment").predict_number(image).number == number


def digitrec(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "digitrec", *args], capture_output=True,
                          text=True, timeout=300)


def test_cli_answers_not_a_digit_and_forces_on_request(nondigit_images, tmp_path: Path):
    path = tmp_path / "star.png"
    path.write_bytes(nondigit_images["shapes"][0])
    result = digitrec("predict", str(path), "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["status"] == "not_digit" and answer["digit"] is None
    assert len(answer["top_k"]) == 3 and 0 <= answer["is_digit"] < 1
    text = digitrec("predict", str(path))
    assert f"{path}: not a digit  best guess: {answer['top_k'][0]['digit']}" in text.stdout
    forced = json.loads(digitrec("predict", str(path), "--json", "--force-digit").stdout)
    assert forced["status"] == "ok" and forced["digit"] == answer["top_k"][0]["digit"]


def test_api_answers_not_a_digit_and_forces_on_request(nondigit_images, mnist_test):
    shape = nondigit_images["shapes"][0]
    with TestClient(create_app(ServeConfig())) as client:
        body = client.post("/v1/predict", content=shape,
                           headers={"Content-Type": "image/png"}).json()
        assert body["status"] == "not_digit" and body["digit"] is None and body["top_k"]
        forced = client.post("/v1/predict?force_digit=true", content=shape,
                             headers={"Content-Type": "image/png"}).json()
        assert forced["status"] == "ok" and forced["digit"] == body["top_k"][0]["digit"]
        digit = png(Image.fromarray(255 - mnist_test[0][0]))
        batch = client.post("/v1/predict/batch",
                            files=[("files", ("a.png", shape)), ("files", ("b.png", digit))])
        statuses = [r["status"] for r in batch.json()["results"]]
        assert statuses == ["not_digit", "ok"]


def test_benchmark_prints_both_rates(data_root: Path):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "rejection.py"),
                             "--count", "20", "--data-dir", str(data_root)],
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert set(report) == {"non-digits", "digits", "calibration", "per_image_ms"}
    assert all(0 <= s["refused"] <= 1 for kind in ("non-digits", "digits")
               for s in report[kind].values())
    assert report["calibration"]["MNIST test"]["ece"] < 0.01
