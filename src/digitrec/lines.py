"""Synthetic written numbers: real handwritten digits composed into lines the way people write
numbers on cheques and forms, as grayscale scans (dark ink on paper).

`render_line(number, pool, rng)` draws a number with digits from a `DigitPool` of 28x28
images (white ink on black, as MNIST and `digitrec.folders` give them), with what real lines
have around the digits: thousands separators (`.` `,` `'`), trailing dashes (`-`, `.-`, `=`),
underlines, varied spacing (touching and overlapping digits), slant, size and stroke width,
printed cheque backgrounds (guilloche), ruled lines, form frames and black scanner margins,
noise, blur and JPEG. `random_number(rng)` draws a number to write. numpy and Pillow only.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .errors import ConfigError

TRAILERS = ("-", ".-", ",-", "=", ".-.", "--")  # what people write after an amount
SEPARATORS = (".", ",", "'")  # thousands separators


class DigitPool:
    """Digit images to compose numbers from: uint8 [N, 28, 28] white on black, and labels."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images, self.labels = images, labels
        self._by_digit = [np.flatnonzero(labels == d) for d in range(10)]
        if any(len(indices) == 0 for indices in self._by_digit):
            raise ConfigError("a digit pool needs images of every digit")

    def by_digit(self, rng: np.random.Generator, digit: int) -> np.ndarray:
        """A random image of `digit`."""
        indices = self._by_digit[digit]
        return self.images[indices[rng.integers(len(indices))]]


def random_number(rng: np.random.Generator) -> str:
    """A number as people write them on forms (1-3 digits) and cheques (3-8 digits)."""
    length = int(rng.integers(1, 4)) if rng.random() < 0.4 else int(rng.integers(3, 9))
    first = str(rng.integers(1, 10)) if rng.random() < 0.9 or length == 1 else "0"
    return first + "".join(str(d) for d in rng.integers(0, 10, length - 1))


def _tight(ink: np.ndarray) -> np.ndarray:
    """Float ink cropped to where it is above 0.1 (a 1x1 blank where it is nowhere)."""
    rows, cols = np.flatnonzero(ink.max(1) > 0.1), np.flatnonzero(ink.max(0) > 0.1)
    if len(rows) == 0:
        return np.zeros((1, 1), np.float32)
    return ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def _resized(ink: np.ndarray, height: int, stretch: float) -> np.ndarray:
    h, w = ink.shape
    width = max(1, round(w * height / h * stretch))
    image = Image.fromarray(ink, mode="F").resize((width, height), Image.BILINEAR)
    return np.clip(np.asarray(image), 0, 1)


def _stroke(draw: ImageDraw.ImageDraw, points: list[tuple[float, float]], width: int) -> None:
    draw.line(points, fill=255, width=max(1, width), joint="curve")


def _mark(kind: str, height: int, pen: int, rng: np.random.Generator) -> np.ndarray:
    """A separator or trailing mark as ink, on a canvas as tall as the digits (`height`) and
    a quarter more below them, where a comma's tail reaches."""
    size = int(height * rng.uniform(0.4, 0.9)) if kind in "-=" else max(3, height // 3)
    below = height // 4
    canvas = Image.new("L", (size + 2 * pen, height + below), 0)
    draw = ImageDraw.Draw(canvas)
    r = max(1.0, pen * rng.uniform(0.6, 1.3))
    base = height - r - rng.uniform(0, height * 0.08)
    if kind == ".":
        cx = size / 2 + pen
        draw.ellipse([cx - r, base - r, cx + r, base + r], fill=255)
    elif kind == ",":
        cx = size / 2 + pen
        draw.ellipse([cx - r, base - r, cx + r, base + r], fill=255)
        _stroke(draw, [(cx + r * 0.5, base), (cx - r, base + below * 0.9)], pen)
    elif kind == "'":
        cx = size / 2 + pen
        _stroke(draw, [(cx + r, height * 0.05), (cx, height * 0.3)], pen)
    elif kind == "-":
        y = height * rng.uniform(0.45, 0.75)
        _stroke(draw, [(pen, y + rng.normal(0, 1)), (size + pen, y + rng.normal(0, 1))], pen)
    elif kind == "=":
        y = height * rng.uniform(0.4, 0.6)
        gap = height * rng.uniform(0.12, 0.22)
        for dy in (0, gap):
            _stroke(draw, [(pen, y + dy), (size + pen, y + dy + rng.normal(0, 1))], pen)
    return np.asarray(canvas, dtype=np.float32) / 255


def _pieces(number: str, pool: DigitPool, height: int, pen: int,
            rng: np.random.Generator) -> list[tuple[np.ndarray, bool]]:
    """The number's digits and marks, left to right, as ink (each flagged: a digit?)."""
    separator = SEPARATORS[rng.integers(len(SEPARATORS))] if rng.random() < 0.45 else ""
    trailer = TRAILERS[rng.integers(len(TRAILERS))] if rng.random() < 0.35 else ""
    pieces = []
    for k, char in enumerate(number):
        digit = _resized(_tight(pool.by_digit(rng, int(char)).astype(np.float32) / 255),
                         max(4, round(height * rng.uniform(0.85, 1.1))), rng.uniform(0.8, 1.2))
        pieces.append((digit, True))
        left = len(number) - 1 - k
        if separator and left and left % 3 == 0:
            pieces.append((_mark(separator, height, pen, rng), False))
    for char in trailer:
        pieces.append((_mark(char, height, pen, rng), False))
    return pieces


def _thickened(ink: np.ndarray, pen: int) -> np.ndarray:
    """Strokes widened for a broad pen (3 px and more)."""
    image = Image.fromarray((ink * 255).astype(np.uint8))
    if pen >= 3:
        image = image.filter(ImageFilter.MaxFilter(2 * (pen // 3) + 1))
    return np.asarray(image, dtype=np.float32) / 255


def compose_ink(number: str, pool: DigitPool, rng: np.random.Generator,
                height: int) -> np.ndarray:
    """The number's ink (white on black), digits `height` rows tall, with marks, spacing,
    baseline jitter, slant and sometimes an underline."""
    pen = max(1, round(height * rng.uniform(0.05, 0.12)))
    pieces = _pieces(number, pool, height, pen, rng)
    spacing = rng.uniform(-0.12, 0.3)
    width = sum(p.shape[1] for p, _ in pieces) + 4 * height
    pad = height
    line = np.zeros((height * 2 + 2 * pad, width + 2 * pad), np.float32)
    x = pad
    for ink, is_digit in pieces:
        # a digit sits on the baseline, jittered; a mark's canvas is drawn to the digits' height
        y = (pad + height - min(ink.shape[0], height) + int(rng.normal(0, height * 0.05))
             if is_digit else pad)
        region = line[y:y + ink.shape[0], x:x + ink.shape[1]]
        np.maximum(region, ink[:region.shape[0], :region.shape[1]], out=region)
        gap = spacing * height * rng.uniform(0.5, 1.5) if is_digit else rng.uniform(0, 0.2) * height
        x += max(1, int(ink.shape[1] + gap))
    if rng.random() < 0.35:  # an underline
        image = Image.fromarray((line * 255).astype(np.uint8))
        draw = ImageDraw.Draw(image)
        y = pad + height + rng.uniform(0.05, 0.35) * height
        x0 = pad + rng.uniform(-0.3, 0.3) * height
        x1 = x + rng.uniform(-0.5, 0.5) * height
        bend = rng.normal(0, height * 0.1)
        _stroke(draw, [(x0, y), ((x0 + x1) / 2, y + bend), (x1, y + rng.normal(0, 2))], pen)
        line = np.asarray(image, dtype=np.float32) / 255
    slant = rng.uniform(-0.35, 0.25)
    h, w = line.shape
    sheared = Image.fromarray((line * 255).astype(np.uint8)).transform(
        (w, h), Image.AFFINE, (1, slant, -slant * h / 2, 0, 1, 0), Image.BILINEAR)
    return _tight(_thickened(np.asarray(sheared, dtype=np.float32) / 255, pen))


def _guilloche(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A cheque's printed background: fine, light, interlaced wavy lines."""
    image = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(image)
    xs = np.linspace(0, w, max(2, w // 3))
    for _ in range(int(rng.integers(6, 20))):
        phase, period = rng.uniform(0, 2 * np.pi), rng.uniform(0.3, 1.5) * w
        amp, y0 = rng.uniform(0.1, 0.6) * h, rng.uniform(0, h)
        ys = y0 + amp * np.sin(2 * np.pi * xs / period + phase)
        draw.line(list(zip(xs.tolist(), ys.tolist(), strict=True)), fill=255, width=1)
    return np.asarray(image, dtype=np.float32) / 255 * rng.uniform(0.1, 0.45)


def _page(ink: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Paper around the ink, as a cheque field (tight) or a form field (roomy, ruled,
    framed, sometimes beside a black scanner margin): (gray page, ink layer)."""
    h, w = ink.shape
    form = rng.random() < 0.35
    if form:
        H = int(h * rng.uniform(2.0, 6.0))
        W = int(max(w * rng.uniform(1.2, 2.5), H * rng.uniform(0.5, 0.9)))
    else:
        H, W = int(h * rng.uniform(1.05, 1.6)), int(w * rng.uniform(1.02, 1.4))
    y = int(rng.integers(0, H - h + 1) if not form else rng.normal(0.45, 0.1) * (H - h))
    y = int(np.clip(y, 0, H - h))
    x = int(rng.integers(0, W - w + 1))
    layer = np.zeros((H, W), np.float32)
    layer[y:y + h, x:x + w] = ink
    paper = np.full((H, W), rng.uniform(0.7, 1.0), np.float32)
    ramp = np.linspace(-1, 1, W)[None, :] * rng.normal(0, 0.05)
    paper = paper + ramp + rng.normal(0, 0.015, (H, W)).astype(np.float32)
    print_layer = np.zeros((H, W), np.float32)
    if not form and rng.random() < 0.5:
        print_layer = np.maximum(print_layer, _guilloche(H, W, rng))
    if form or rng.random() < 0.2:
        lines = Image.new("L", (W, H), 0)
        draw = ImageDraw.Draw(lines)
        for _ in range(int(rng.integers(0, 4))):
            yy = rng.uniform(0, H)
            draw.line([(0, yy), (W, yy + rng.normal(0, 1))], fill=255, width=int(rng.integers(1, 3)))
        if form:
            for xx in (rng.uniform(0, 0.1) * W, W - rng.uniform(0, 0.1) * W):
                if rng.random() < 0.6:
                    draw.line([(xx, 0), (xx + rng.normal(0, 1), H)], fill=255,
                              width=int(rng.integers(1, 4)))
        print_layer = np.maximum(print_layer,
                                 np.asarray(lines, np.float32) / 255 * rng.uniform(0.3, 0.9))
    page = paper * (1 - print_layer)
    if form and rng.random() < 0.5:  # a black scanner margin at one side
        margin = int(W * rng.uniform(0.1, 0.5))
        seam = np.linspace(0.05, 1, max(1, int(rng.integers(1, 8))))
        shade = np.concatenate([np.full(margin, 0.05), seam])[:W]
        if rng.random() < 0.5:
            shade = shade[::-1]
            page[:, W - len(shade):] = np.minimum(page[:, W - len(shade):], shade[None, :])
            layer[:, W - len(shade):] = 0
        else:
            page[:, :len(shade)] = np.minimum(page[:, :len(shade)], shade[None, :])
            layer[:, :len(shade)] = 0
    return page, layer


def _finish(gray: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Scanned: sometimes at a lower resolution, blurred, noisy, JPEG-compressed."""
    image = Image.fromarray((np.clip(gray, 0, 1) * 255).astype(np.uint8))
    if rng.random() < 0.3:
        small = (max(8, int(image.width * rng.uniform(0.4, 0.8))),
                 max(8, int(image.height * rng.uniform(0.4, 0.8))))
        image = image.resize(small, Image.BILINEAR)
    if rng.random() < 0.5:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    if rng.random() < 0.6:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=int(rng.integers(30, 95)))
        image = Image.open(io.BytesIO(buffer.getvalue()))
    return image


def render_line(number: str, pool: DigitPool, rng: np.random.Generator) -> Image.Image:
    """A grayscale scan of `number` written by hand (see the module's description)."""
    height = int(rng.integers(18, 56))
    ink = compose_ink(number, pool, rng, height)
    page, layer = _page(ink, rng)
    pen = rng.uniform(0.0, 0.45)
    gray = page * (1 - layer) + pen * layer
    if rng.random() < 0.1:  # light ink on a dark page
        gray = 1 - gray
    return _finish(gray, rng)
