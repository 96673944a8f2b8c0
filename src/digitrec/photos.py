"""Realistic images made from MNIST-style ink: photos and scans of digits and numbers, on
coloured, unevenly lit pages, blurred and JPEG-compressed. Tests and benchmarks read them as
a user's photos would be read; the verifier learns from them too. numpy and Pillow only."""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
from PIL import Image, ImageFilter


def _stroke(image: Image.Image, scale: int, rng: np.random.Generator) -> Image.Image:
    """Make strokes thicker or thinner, as different pens would."""
    kind = rng.choice(["thin", "normal", "thick"])
    size = 2 * max(1, scale // 4) + 1
    if kind == "thick":
        return image.filter(ImageFilter.MaxFilter(size))
    if kind == "thin":
        return image.filter(ImageFilter.MinFilter(size))
    return image


def _background(size: tuple[int, int], dark: bool, rng: np.random.Generator) -> np.ndarray:
    """A coloured page lit unevenly: an RGB float array in [0, 1]."""
    w, h = size
    base = rng.uniform(0.05, 0.3, 3) if dark else rng.uniform(0.7, 1.0, 3)
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:h, 0:w]
    ramp = (np.cos(angle) * xs / w + np.sin(angle) * ys / h)
    light = 1 + rng.uniform(0.1, 0.35) * (ramp - ramp.mean())
    return np.clip(base[None, None, :] * light[..., None], 0, 1)


def _finish(rgb: np.ndarray, scale: int, rng: np.random.Generator) -> Image.Image:
    """Blur, sensor noise and JPEG compression."""
    noisy = np.clip(rgb + rng.normal(0, 0.02, rgb.shape), 0, 1)
    image = Image.fromarray((noisy * 255).astype(np.uint8))
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0, scale / 4)))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(rng.integers(30, 90)))
    return Image.open(io.BytesIO(buffer.getvalue()))


def photograph(ink: Image.Image, scale: int, rng: np.random.Generator) -> Image.Image:
    """Put white-on-black ink on a random page, at a random place, in either polarity."""
    ink = _stroke(ink, scale, rng)
    w, h = ink.size
    canvas = (int(w * rng.uniform(1.3, 2.2)), int(h * rng.uniform(1.3, 2.2)))
    layer = np.zeros((canvas[1], canvas[0]), dtype=np.float32)
    x, y = rng.integers(0, canvas[0] - w + 1), rng.integers(0, canvas[1] - h + 1)
    layer[y:y + h, x:x + w] = np.asarray(ink, dtype=np.float32) / 255
    dark_page = bool(rng.integers(2))
    page = _background(canvas, dark_page, rng)
    pen = rng.uniform(0.85, 1.0, 3) if dark_page else rng.uniform(0.0, 0.25, 3)
    rgb = page * (1 - layer[..., None]) + pen[None, None, :] * layer[..., None]
    return _finish(rgb, scale, rng)


def render_digit(digit: np.ndarray, rng: np.random.Generator,
                 scales: tuple[int, int] = (4, 12)) -> Image.Image:
    """A 28x28 uint8 MNIST digit as a photo/scan: upscaled by a factor in `scales` (both
    included), placed, coloured, blurred, JPEG."""
    scale = int(rng.integers(scales[0], scales[1] + 1))
    ink = Image.fromarray(digit).resize((28 * scale, 28 * scale), Image.BICUBIC)
    return photograph(ink, scale, rng)


def drawing(ink: np.ndarray) -> Image.Image:
    """Ink (float in [0, 1], white on black) as the drawing page sends it: dark strokes on a
    white 280x280 canvas."""
    return Image.fromarray((255 - ink * 255).astype(np.uint8)).resize((280, 280))


def compose_number(digits: list[np.ndarray], rng: np.random.Generator,
                   only: int | None = None) -> np.ndarray:
    """MNIST digits side by side (tight crops) with random gaps, slight overlaps and baseline
    jitter, as white ink on black at MNIST scale; with `only`, just that digit is drawn (the
    others keep their places)."""
    crops = []
    for digit in digits:
        cols = np.flatnonzero(digit.max(0) > 30)
        crops.append(digit[:, cols[0]:cols[-1] + 1])
    gaps = rng.integers(-1, 7, len(crops) - 1)
    width = sum(c.shape[1] for c in crops) + int(gaps.sum()) + 8
    line = np.zeros((36, width), dtype=np.uint8)
    x = 4
    for k, crop in enumerate(crops):
        y = int(rng.integers(1, 8))
        if only is None or only == k:
            region = line[y:y + 28, x:x + crop.shape[1]]
            np.maximum(region, crop, out=region)
        x += crop.shape[1] + (int(gaps[k]) if k < len(gaps) else 0)
    return line


def five_digit_numbers(images: np.ndarray, labels: np.ndarray, seed: int, count: int
                       ) -> Iterator[tuple[list[np.ndarray], str, np.random.Generator]]:
    """`count` numbers of five random MNIST digits: (digits, the number, the generator to
    render it with before the next number is drawn). The same seed, the same numbers."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        picks = rng.choice(len(labels), 5)
        yield [images[i] for i in picks], "".join(map(str, labels[picks])), rng


def render_number(digits: list[np.ndarray], rng: np.random.Generator,
                  only: int | None = None) -> Image.Image:
    """A written number as a photo/scan (upscaled 3-6x); `only`: see `compose_number`."""
    line = compose_number(digits, rng, only)
    scale = int(rng.integers(3, 7))
    ink = Image.fromarray(line).resize((line.shape[1] * scale, line.shape[0] * scale),
                                       Image.BICUBIC)
    return photograph(ink, scale, rng)
