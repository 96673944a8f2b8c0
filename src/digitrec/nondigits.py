"""Things that are not digits, printed and drawn: what the verifier learns to refuse.

Two kinds, each as ink (float32, white on black, any size) ready for `preprocess.normalise_digit`:
- **printed letters and signs** from TrueType fonts that ship inside Python packages digitrec
  already uses (matplotlib's DejaVu, Computer Modern and STIX), in several weights, slanted,
  rotated and with thicker or thinner strokes;
- **drawn strokes** as a pen or a finger on the drawing page makes them: stars, smileys,
  crosses, arrows, spirals, squares, hearts, triangles, zigzags, waves, suns, houses, scribbles
  and letters drawn stroke by stroke, each shape jittered, slanted and drawn with a random pen.

Characters that look like a digit in some hand (O, I, l, Z, S, B, g, q, b, G, ...) are left out:
refusing them would refuse real digits. numpy and Pillow (and matplotlib for its fonts).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

LETTERS = ("ACEFHKMNPRTUVWXYacdefhkmnprtuvwxy"
           "ΓΔΛΞΠΣΦΨΩαγηλμπφψω&@#%*+=<>~€£¥§¶")
CANVAS = 96  # pixels of the square a character or a shape is rendered in
SCRIBBLES = 4  # scribbles are drawn this many times as often as each shape
Stroke = list[tuple[float, float]]  # a pen's path in unit coordinates ([0, 1], y down)


def font_files(families: Sequence[str] = ("DejaVu", "cm", "STIXGeneral")) -> list[Path]:
    """The TrueType fonts of matplotlib whose names start with one of `families` (an empty
    list where matplotlib is not installed)."""
    try:
        import matplotlib
    except ImportError:
        return []
    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    skip = ("cmex", "cmsy", "cmmi", "Display")  # symbol-only fonts and display cuts
    return sorted(p for p in folder.glob("*.ttf")
                  if p.name.startswith(tuple(families)) and not any(s in p.name for s in skip))


@cache
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def _has_glyph(font: ImageFont.FreeTypeFont, char: str) -> bool:
    """Whether the font draws `char` (not the empty box of a missing glyph)."""
    box = font.getbbox(char)
    return box[2] > box[0] and box[3] > box[1] and font.getmask(char).getbbox() is not None


def printed(char: str, font: Path, rng: np.random.Generator) -> np.ndarray:
    """One character printed in `font`: random size, stroke weight, slant and rotation."""
    face = _font(str(font), int(rng.integers(48, 72)))
    image = Image.new("L", (CANVAS * 2, CANVAS * 2), 0)
    weight = int(rng.choice([0, 0, 1, 2, 3]))
    ImageDraw.Draw(image).text((CANVAS, CANVAS), char, fill=255, font=face, anchor="mm",
                               stroke_width=weight, stroke_fill=255)
    return _transform(image, rng)


def _transform(image: Image.Image, rng: np.random.Generator) -> np.ndarray:
    """Slant and rotate an ink image a little, as writing and photos vary."""
    shear = math.tan(math.radians(rng.uniform(-15, 15)))
    h = image.size[1]
    image = image.transform(image.size, Image.AFFINE, (1, shear, -shear * h / 2, 0, 1, 0),
                            Image.BILINEAR)
    image = image.rotate(rng.uniform(-15, 15), Image.BILINEAR)
    return np.asarray(image, dtype=np.float32) / 255


def _circle(cx: float, cy: float, r: float, start: float = 0.0, end: float = 360.0,
            points: int = 24) -> Stroke:
    angles = np.radians(np.linspace(start, end, points))
    return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in angles]


def _star() -> list[Stroke]:
    corners = [(0.5 + 0.45 * math.sin(2 * math.pi * k * 2 / 5),
                0.52 - 0.45 * math.cos(2 * math.pi * k * 2 / 5)) for k in range(6)]
    return [corners]


def _smiley() -> list[Stroke]:
    return [_circle(0.5, 0.5, 0.42, points=32), _circle(0.35, 0.38, 0.03, points=6),
            _circle(0.65, 0.38, 0.03, points=6), _circle(0.5, 0.5, 0.25, 20, 160, 12)]


def _spiral() -> list[Stroke]:
    angles = np.linspace(0, 5 * math.pi, 60)
    return [[(0.5 + 0.42 * a / angles[-1] * math.cos(a), 0.5 + 0.42 * a / angles[-1] * math.sin(a))
             for a in angles]]


def _heart() -> list[Stroke]:
    t = np.linspace(0, 2 * math.pi, 40)
    x, y = 16 * np.sin(t) ** 3, 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
    return [list(zip(0.5 + x / 36, 0.45 - y / 36, strict=True))]


def _sun() -> list[Stroke]:
    rays = [[(0.5 + 0.28 * math.cos(a), 0.5 + 0.28 * math.sin(a)),
             (0.5 + 0.45 * math.cos(a), 0.5 + 0.45 * math.sin(a))]
            for a in np.linspace(0, 2 * math.pi, 9)[:-1]]
    return [_circle(0.5, 0.5, 0.18, points=16), *rays]


SHAPES: dict[str, Callable[[], list[Stroke]]] = {
    "star": _star,
    "smiley": _smiley,
    "cross": lambda: [[(0.1, 0.1), (0.9, 0.9)], [(0.9, 0.1), (0.1, 0.9)]],
    "plus": lambda: [[(0.5, 0.05), (0.5, 0.95)], [(0.05, 0.5), (0.95, 0.5)]],
    "arrow": lambda: [[(0.05, 0.5), (0.95, 0.5)], [(0.65, 0.2), (0.95, 0.5), (0.65, 0.8)]],
    "spiral": _spiral,
    "square": lambda: [[(0.1, 0.1), (0.9, 0.1), (0.9, 0.9), (0.1, 0.9), (0.1, 0.1)]],
    "triangle": lambda: [[(0.5, 0.08), (0.92, 0.88), (0.08, 0.88), (0.5, 0.08)]],
    "heart": _heart,
    "zigzag": lambda: [[(0.05 + 0.9 * k / 6, 0.25 if k % 2 else 0.75) for k in range(7)]],
    "wave": lambda: [[(x, 0.5 + 0.25 * math.sin(4 * math.pi * x)) for x in np.linspace(0, 1, 30)]],
    "sun": _sun,
    "house": lambda: [[(0.15, 0.45), (0.15, 0.92), (0.85, 0.92), (0.85, 0.45), (0.15, 0.45),
                       (0.5, 0.08), (0.85, 0.45)]],
    "hash": lambda: [[(0.35, 0.05), (0.3, 0.95)], [(0.7, 0.05), (0.65, 0.95)],
                     [(0.1, 0.35), (0.9, 0.35)], [(0.1, 0.68), (0.9, 0.68)]],
    "check": lambda: [[(0.08, 0.55), (0.38, 0.88), (0.92, 0.1)]],
    "lightning": lambda: [[(0.6, 0.02), (0.3, 0.5), (0.65, 0.5), (0.35, 0.98)]],
    "A": lambda: [[(0.1, 0.95), (0.5, 0.05), (0.9, 0.95)], [(0.27, 0.6), (0.73, 0.6)]],
    "E": lambda: [[(0.8, 0.05), (0.2, 0.05), (0.2, 0.95), (0.8, 0.95)], [(0.2, 0.5), (0.7, 0.5)]],
    "F": lambda: [[(0.8, 0.05), (0.2, 0.05), (0.2, 0.95)], [(0.2, 0.5), (0.7, 0.5)]],
    "H": lambda: [[(0.2, 0.05), (0.2, 0.95)], [(0.8, 0.05), (0.8, 0.95)], [(0.2, 0.5), (0.8, 0.5)]],
    "K": lambda: [[(0.2, 0.05), (0.2, 0.95)], [(0.8, 0.05), (0.2, 0.55), (0.8, 0.95)]],
    "M": lambda: [[(0.1, 0.95), (0.15, 0.05), (0.5, 0.7), (0.85, 0.05), (0.9, 0.95)]],
    "N": lambda: [[(0.2, 0.95), (0.2, 0.05), (0.8, 0.95), (0.8, 0.05)]],
    "R": lambda: [[(0.2, 0.95), (0.2, 0.05), *_circle(0.45, 0.28, 0.23, -90, 90, 10),
                   (0.2, 0.5), (0.8, 0.95)]],
    "W": lambda: [[(0.05, 0.05), (0.25, 0.95), (0.5, 0.35), (0.75, 0.95), (0.95, 0.05)]],
    "X": lambda: [[(0.15, 0.05), (0.85, 0.95)], [(0.85, 0.05), (0.15, 0.95)]],
    "Y": lambda: [[(0.1, 0.05), (0.5, 0.5), (0.9, 0.05)], [(0.5, 0.5), (0.5, 0.95)]],
    "e": lambda: [[(0.15, 0.55), (0.85, 0.55), *_circle(0.5, 0.55, 0.35, 0, -300, 24)]],
    "m": lambda: [[(0.1, 0.9), (0.1, 0.35), *_circle(0.3, 0.45, 0.2, 180, 360, 8), (0.5, 0.9),
                   (0.5, 0.45), *_circle(0.7, 0.45, 0.2, 180, 360, 8), (0.9, 0.9)]],
    "w": lambda: [[(0.05, 0.3), (0.25, 0.9), (0.5, 0.45), (0.75, 0.9), (0.95, 0.3)]],
}


def _scribble(rng: np.random.Generator) -> list[Stroke]:
    """A random tangle: a walk with momentum that goes back and forth over the unit square."""
    points, position = [], rng.uniform(0.2, 0.8, 2)
    velocity = rng.normal(0, 0.1, 2)
    for _ in range(int(rng.integers(50, 140))):
        velocity = 0.8 * velocity + rng.normal(0, 0.06, 2)
        position = np.clip(position + velocity, 0.0, 1.0)
        points.append((float(position[0]), float(position[1])))
    return [points]


def _jitter(strokes: list[Stroke], rng: np.random.Generator, amount: float) -> list[Stroke]:
    """Move every point a little and the whole drawing by a random affine map."""
    matrix = np.eye(2) + rng.normal(0, 0.12, (2, 2))
    out = []
    for stroke in strokes:
        points = (np.asarray(stroke) - 0.5) @ matrix.T + 0.5
        out.append([tuple(p) for p in points + rng.normal(0, amount, points.shape)])
    return out


def drawn(kind: str, rng: np.random.Generator) -> np.ndarray:
    """One shape drawn with a round pen of random width (`kind`: a key of SHAPES or
    "scribble")."""
    strokes = _scribble(rng) if kind == "scribble" else SHAPES[kind]()
    strokes = _jitter(strokes, rng, amount=float(rng.uniform(0.0, 0.02)))
    image = Image.new("L", (CANVAS, CANVAS), 0)
    draw = ImageDraw.Draw(image)
    width = int(rng.integers(3, 12))
    margin = CANVAS * 0.15
    for stroke in strokes:
        xy = [(margin + x * (CANVAS - 2 * margin), margin + y * (CANVAS - 2 * margin))
              for x, y in stroke]
        draw.line(xy, fill=255, width=width, joint="curve")
        for x, y in (xy[0], xy[-1]):  # round caps, as the page's canvas draws them
            draw.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=255)
    return _transform(image, rng)


def drawn_kinds() -> list[str]:
    """Every kind `drawn` makes, scribbles SCRIBBLES times (they vary most)."""
    return [*SHAPES, *["scribble"] * SCRIBBLES]


def nondigits(count: int, seed: int, fonts: Sequence[Path] | None = None,
              kinds: Sequence[str] | None = None, letters: str = LETTERS) -> list[np.ndarray]:
    """`count` non-digit inks, half printed (in `fonts`, default all of `font_files()`; none
    where there are no fonts) and half drawn (of `kinds`, default all), reproducibly."""
    rng = np.random.default_rng(seed)
    fonts = font_files() if fonts is None else list(fonts)
    kinds = drawn_kinds() if kinds is None else list(kinds)
    glyphs = [(c, f) for f in fonts for c in letters if _has_glyph(_font(str(f), 64), c)]
    inks = []
    for i in range(count):
        if glyphs and i % 2 == 0:
            char, font = glyphs[int(rng.integers(len(glyphs)))]
            inks.append(printed(char, font, rng))
        else:
            inks.append(drawn(kinds[int(rng.integers(len(kinds)))], rng))
    return inks
