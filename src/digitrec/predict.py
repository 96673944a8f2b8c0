"""Predictor: one API to recognise digits in images with a trained model.

`Predictor(model)` loads an exported `.onnx` file (ONNX Runtime backend, no PyTorch needed) or a
run directory (PyTorch backend); with no model it uses the ONNX model shipped inside the
package. Every input goes through `digitrec.preprocess` first. Blank images give an explicit
"blank" result instead of a guess; what the verifier (`digitrec.verifier`) judges not to be a
digit (a letter, a shape, a scribble) is answered "not_digit" with the best guess kept in
`top_k` (`force_digit=True` answers a digit anyway); answers below `min_confidence` become
"unknown". `predict_number` reads a written number with the number reader (`digitrec.reader`;
the shipped one by default), which reads the whole line without cutting it, after the verifier
has taken out marks that are not digits; the digit model then reads each digit it found again
on its own, and the two readings are mixed; with `reader="segment"` it cuts the ink into digits
instead, asking the verifier whether each piece is one whole digit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .calibration import softmax
from .card import METADATA_VERSION, card_temperature, parse_card
from .errors import ConfigError, ModelError
from .preprocess import ImageSource, ink_of, normalise_digit, preprocess
from .reader import DigitRead, NumberReader, digit_inks, line_of, without_marks
from .runtime import metadata_of, onnx_session
from .segment import split_digits


@dataclass
class Prediction:
    """The answer for one digit. `digit` is None when the image is blank or the model unsure."""

    digit: int | None
    confidence: float
    status: str  # "ok", "not_digit", "unknown" (below min_confidence) or "blank" (no ink)
    probabilities: list[float] = field(default_factory=list)
    top_k: list[dict] = field(default_factory=list)
    box: tuple[int, int, int, int] | None = None  # where the digit is, in working pixels
    image: np.ndarray | None = field(default=None, repr=False)  # the 28x28 the model saw
    is_digit: float | None = None  # how much like a digit the verifier finds it (0 to 1)

    def to_dict(self) -> dict:
        """JSON-ready fields (without the image, and without the box and `is_digit` when
        there are none), in new lists: changing the dict leaves the prediction as it was."""
        out = {"digit": self.digit, "confidence": self.confidence, "status": self.status,
               "probabilities": list(self.probabilities),
               "top_k": [dict(entry) for entry in self.top_k]}
        if self.is_digit is not None:
            out["is_digit"] = self.is_digit
        if self.box is not None:
            out["box"] = self.box
        return out


@dataclass
class NumberPrediction:
    """A written number: its digits left to right ("?" for an unsure digit)."""

    number: str
    digits: list[Prediction]
    image: np.ndarray | None = field(default=None, repr=False)  # the line the reader saw

    @property
    def confidence(self) -> float:
        """The probability that every digit is right (product of the digits' confidences)."""
        return float(np.prod([d.confidence for d in self.digits])) if self.digits else 0.0

    def to_dict(self) -> dict:
        return {"number": self.number, "confidence": self.confidence,
                "digits": [d.to_dict() for d in self.digits]}


def blank() -> Prediction:
    """The answer for an image without ink."""
    return Prediction(digit=None, confidence=0.0, status="blank")


class TorchBackend:
    """Runs a model from a digitrec run directory with PyTorch."""

    def __init__(self, run_dir: Path) -> None:
        import torch

        from .checkpoint import load_model
        from .data import get_dataset

        self._torch = torch
        self.model, self.card = load_model(run_dir)
        self.temperature = card_temperature(self.card)
        self.labels = list(get_dataset(self.card["data"]["dataset"]).classes)
        self.test_accuracy = self.card["metrics"]["test_accuracy"]

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities for float32 images [N, 28, 28] in [0, 1]."""
        from .evaluate import predict_logits

        logits = predict_logits(self.model, self._torch.from_numpy(batch[:, None]))
        return softmax(logits.numpy(), self.temperature)


INPUT, OUTPUT = "image", "logits"  # tensor names in exported ONNX files
DEFAULT_MODEL = "digits-accurate.onnx"  # in digitrec/assets/
SHIPPED_RUN = "digits-accurate"  # in digitrec/assets/: the shipped model's run (card + weights)
DEFAULT_VERIFIER = "digit-verifier.onnx"  # in digitrec/assets/: see digitrec.verifier
DEFAULT_READER = "number-reader.onnx"  # in digitrec/assets/: see digitrec.reader
SEGMENT = "segment"  # the reader option that cuts numbers into digits instead
DEFAULT_TOP_K = 3  # ranked answers in each prediction
# what the `verifier` and `reader` options mean, for every command that takes them
VERIFIER_HELP = ("the .onnx file from `digitrec train-verifier` that tells digits from what is "
                 "not a digit, and judges where numbers are cut (default: the shipped one)")
READER_HELP = ("the .onnx file from `digitrec train-reader` that reads written numbers (default: "
               "the shipped one), or `segment` to cut numbers into digits and read each instead")
VERIFIER_LABELS = ["pieces", "digit", "other"]  # the verifier's outputs (see digitrec.verifier)
WHOLE, OTHER = VERIFIER_LABELS.index("digit"), VERIFIER_LABELS.index("other")
ONNX_BATCH = 1024  # images per ONNX Runtime call (bounds memory on large inputs)
# A piece of a number less like a digit than this is a mark and left out. Far below the
# threshold for single images: on their own, strokes of real cursive numbers look like nothing.
MARK_LIKENESS = 0.002
# A single image is refused below the verifier's threshold moved by how sure the digit model
# is: a digit it reads at SURE or more only below a quarter of it, one it doubts below twice
# it. Sure reads of odd writing are kept, doubtful shapes refused more.
SURE, SURE_SCALE, DOUBT_SCALE = 0.99, 0.25, 2.0
# The digit model's share when a digit the reader found is read again (a geometric mixture):
# the reader knows where the digits are and the digit model, trained on more writers, what
# each is.
DIGIT_WEIGHT = 0.25
TINY = 1e-9  # keeps the logarithms of the mixture finite


class OnnxBackend:
    """Runs an exported `.onnx` model with ONNX Runtime; its metadata holds labels and card."""

    def __init__(self, model: bytes | str, source: str) -> None:
        self.session = onnx_session(model, source)
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or list(inputs[0].shape[1:]) != [1, 28, 28]:
            raise ModelError(f"{source} is not a digit classifier: it should take one input "
                             f"shaped [N, 1, 28, 28]")
        self.input = inputs[0].name
        self.metadata = metadata_of(self.session)
        version = self.metadata.get("metadata_version", 0)
        if not isinstance(version, int) or version > METADATA_VERSION:
            raise ModelError(f"{source}: its metadata (version {version!r}) is newer than this "
                             f"digitrec reads (up to {METADATA_VERSION}): upgrade digitrec")
        # a digit model exported by digitrec carries its card; one from another tool none
        self.card = parse_card(self.metadata["card"], source, ModelError) \
            if "card" in self.metadata else None
        self.temperature = card_temperature(self.card)
        self.labels = self.metadata.get("labels", [str(d) for d in range(10)])
        self.test_accuracy = self.metadata.get("test_accuracy")  # of this file (int8 differs)
        self.threshold = self.metadata.get("threshold")  # a verifier's: see load_verifier

    @classmethod
    def load(cls, path: str | os.PathLike) -> OnnxBackend:
        return cls(str(path), str(path))

    @classmethod
    def from_bytes(cls, data: bytes) -> OnnxBackend:
        return cls(data, "(in memory)")

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Logits for float32 images [N, 1, 28, 28] in [0, 1]."""
        return np.concatenate([self.session.run(None, {self.input: x[i:i + ONNX_BATCH]})[0]
                               for i in range(0, len(x), ONNX_BATCH)])

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities for float32 images [N, 28, 28] in [0, 1]."""
        return softmax(self.logits(np.ascontiguousarray(batch[:, None], dtype=np.float32)),
                       self.temperature)


def digit_likeness(judged: np.ndarray) -> np.ndarray:
    """How much like a digit each piece of ink is, from the verifier's probabilities: all but
    its probability of "other" (pieces of digits are digits to a reader of single images)."""
    return 1.0 - judged[:, OTHER]


def refuses(likeness: float, read: float, threshold: float) -> bool:
    """Whether an image of digit-likeness `likeness`, whose digit the model reads with
    probability `read`, is refused as not a digit (see SURE)."""
    return likeness < threshold * (SURE_SCALE if read >= SURE else DOUBT_SCALE)


def shipped(name: str) -> Path:
    """A file shipped inside the package (digitrec/assets/)."""
    from importlib.resources import files

    return Path(str(files("digitrec") / "assets" / name))


def run_dir_of(name: str | os.PathLike) -> Path:
    """A run directory by path, or `shipped` for the run the shipped model was exported from
    (so `digitrec train --init shipped` fine-tunes it)."""
    return shipped(SHIPPED_RUN) if str(name) == "shipped" else Path(name)


def default_model() -> Path:
    """The ONNX model shipped inside the package."""
    return shipped(DEFAULT_MODEL)


def load_backend(model: str | os.PathLike | None = None):
    """The inference backend for a model path: `.onnx` file, run directory, or (None) the
    shipped default model."""
    path = default_model() if model is None else Path(model)
    if path.is_dir():
        return TorchBackend(path)
    if not path.exists():
        raise ModelError(f"model {path} does not exist")
    backend = OnnxBackend.load(path)
    if "verifier" in backend.metadata:
        raise ModelError(f"{path} is a verifier, not a digit model: give it as --verifier")
    return backend


def load_verifier(path: str | os.PathLike | None = None) -> OnnxBackend:
    """A verifier from `digitrec train-verifier` (None: the shipped one); its `threshold` is
    the digit-likeness below which an image is not a digit."""
    path = shipped(DEFAULT_VERIFIER) if path is None else Path(path)
    if not path.is_file():
        raise ModelError(f"verifier {path} " + ("is not a file" if path.exists() else
                                                 "does not exist"))
    verifier = OnnxBackend.load(path)
    if verifier.labels != VERIFIER_LABELS or not isinstance(verifier.threshold, float):
        raise ModelError(f"{path} is not a verifier from `digitrec train-verifier` (one from "
                         f"before non-digits were refused must be trained again)")
    return verifier


def load_reader(path: str | os.PathLike | None = None) -> NumberReader:
    """A number reader from `digitrec train-reader` (None: the shipped one)."""
    path = shipped(DEFAULT_READER) if path is None else Path(path)
    if not path.is_file():
        raise ModelError(f"number reader {path} " + ("is not a file" if path.exists() else
                                                     "does not exist"))
    return NumberReader(path)


class Predictor:
    """Recognise digits (or written numbers) in images with a trained model."""

    def __init__(self, model: str | os.PathLike | None = None, top_k: int = DEFAULT_TOP_K,
                 min_confidence: float = 0.0, verifier: str | os.PathLike | None = None,
                 reader: str | os.PathLike | None = None, force_digit: bool = False) -> None:
        if not 0.0 <= min_confidence <= 1.0:
            raise ConfigError("min_confidence must be between 0 and 1")
        self.backend = load_backend(model)
        segment = str(reader) == SEGMENT
        self.reader = None if segment else load_reader(reader)  # None: cut numbers into digits
        self.verifier = load_verifier(verifier)
        self.force_digit = force_digit
        self.top_k = top_k
        self.min_confidence = min_confidence

    def classify(self, digits: np.ndarray | list[np.ndarray],
                 refuse: bool = True) -> list[Prediction]:
        """Predictions for preprocessed digits ([N, 28, 28] in [0, 1], white on black), each
        with the image it was given and, with `refuse`, its digit-likeness: what the verifier
        finds unlike a digit is answered "not_digit" (unless `force_digit`)."""
        if len(digits) == 0:
            return []
        batch = np.asarray(digits, dtype=np.float32)
        judged = [float(j) for j in digit_likeness(self.verifier.probabilities(batch))] \
            if refuse else [None] * len(batch)
        answers = [self._answer(p, is_digit=j)
                   for p, j in zip(self.backend.probabilities(batch), judged, strict=True)]
        for answer, digit in zip(answers, batch, strict=True):
            answer.image = digit
        return answers

    def _answer(self, probabilities: np.ndarray, confidence: float | None = None,
                is_digit: float | None = None) -> Prediction:
        """The answer for a digit's probabilities; `confidence` where it is not their top
        probability (for a digit in a written number: the probability that a digit is there
        times that of the digit chosen); `is_digit`, the image's
        digit-likeness, where the verifier was asked."""
        best = int(probabilities.argmax())
        read = float(probabilities[best])
        refused = not self.force_digit and is_digit is not None and \
            refuses(is_digit, read, self.verifier.threshold)
        confidence = read if confidence is None else confidence
        ranked = np.argsort(-probabilities)[:self.top_k]
        status = "not_digit" if refused else "ok" if confidence >= self.min_confidence \
            else "unknown"
        return Prediction(digit=best if status == "ok" else None, confidence=confidence,
                          status=status, probabilities=[float(p) for p in probabilities],
                          top_k=[{"digit": int(d), "probability": float(probabilities[d])}
                                 for d in ranked], is_digit=is_digit)

    def _confidences(self, digits: list[np.ndarray]) -> list[float]:
        """How sure we are that each 28x28 piece of ink is a digit (judges where a number is
        cut): the classifier's top probability times the verifier's that it is one whole digit."""
        if not digits:
            return []
        batch = np.stack(digits)
        read = self.backend.probabilities(batch).max(1)
        whole = self.verifier.probabilities(batch)[:, WHOLE]
        return [float(p) for p in read * whole]

    def _marks(self, pieces: np.ndarray) -> np.ndarray:
        """Which 28x28 pieces of ink are marks, not digits nor parts of digits: those the
        verifier finds less like a digit than MARK_LIKENESS."""
        return digit_likeness(self.verifier.probabilities(pieces)) < MARK_LIKENESS

    def predict(self, images: list[ImageSource]) -> list[Prediction]:
        """One prediction per image (each image holds one digit)."""
        prepared = [preprocess(image) for image in images]
        answers = iter(self.classify([p for p in prepared if p is not None]))
        return [next(answers) if p is not None else blank() for p in prepared]

    def accept(self, answer: Prediction) -> Prediction:
        """The answer as if the image had been forced to be a digit (the same answer where
        it was not refused)."""
        if answer.status != "not_digit":
            return answer
        forced = self._answer(np.asarray(answer.probabilities))
        return replace(forced, box=answer.box, image=answer.image, is_digit=answer.is_digit)

    def predict_number(self, image: ImageSource,
                       force_digit: bool | None = None) -> NumberPrediction:
        """Read a written number (one line of digits, any length); marks the verifier calls
        non-digits are left out unless `force_digit` (default: the predictor's)."""
        keep_marks = self.force_digit if force_digit is None else force_digit
        if self.reader is None:
            return self._segmented_number(image, keep_marks)
        line = line_of(image, None if keep_marks else self._marks)
        if line is None:
            return NumberPrediction("", [])
        reads = self.reader.read(line)
        inks = digit_inks(line, reads)
        answers = []
        for read, ink, probabilities in zip(reads, inks, self._read_again(reads, inks),
                                            strict=True):
            answer = self._answer(probabilities, read.presence * float(probabilities.max()))
            answer.box = line.digit_box(read, ink)
            answers.append(answer)
        return NumberPrediction(_number_of(answers), answers, line.input)

    def _read_again(self, reads: list[DigitRead], inks: list[np.ndarray]) -> np.ndarray:
        """[digits, 10]: each digit's probabilities, the reader's mixed (DIGIT_WEIGHT) with
        the digit model's for the digit's ink alone, where it has enough ink to be read."""
        if not reads:
            return np.zeros((0, 10), dtype=np.float32)
        own = np.log(np.stack([read.probabilities for read in reads]) + TINY)
        again = own.copy()
        digits = [normalise_digit(ink) for ink in inks]
        readable = [k for k, digit in enumerate(digits) if digit is not None]
        if readable:
            batch = np.stack([digits[k] for k in readable])
            again[readable] = np.log(self.backend.probabilities(batch) + TINY)
        return softmax((1 - DIGIT_WEIGHT) * own + DIGIT_WEIGHT * again)

    def _segmented_number(self, image: ImageSource, keep_marks: bool) -> NumberPrediction:
        """Read a number by cutting its ink into digits and classifying each."""
        ink = ink_of(image)
        segments = split_digits(ink if keep_marks else without_marks(ink, self._marks),
                                judge=self._confidences)
        # the marks are out; what is left is read as digits, "?" where unsure
        answers = self.classify([normalise_digit(s.ink) for s in segments], refuse=False)
        for answer, segment in zip(answers, segments, strict=True):
            answer.box = segment.box
        return NumberPrediction(_number_of(answers), answers)


def _number_of(answers: list[Prediction]) -> str:
    return "".join(str(a.digit) if a.digit is not None else "?" for a in answers)
