"""Preprocessing, step by step: decoding, grayscale, ink, crop, 20 px box, centre of mass,
connected components and digit splitting. No model, no torch."""

from __future__ import annotations

import io
from collections import deque
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digitrec.errors import ImageDecodeError
from digitrec.preprocess import (
    WORK_SIZE,
    centre_by_mass,
    connected_components,
    crop_to_ink,
    digit_ink,
    enlarge,
    fit_box,
    normalise_digit,
    open_image,
    otsu_threshold,
    percentiles,
    preprocess,
    shrink,
    smooth_background,
    to_gray,
    to_ink,
)
from digitrec.preprocess.background import _surface, _surface_terms
from digitrec.preprocess.pipeline import QUICK_SIZE
from digitrec.segment import split_digits


def png_bytes(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=options.pop("format", "PNG"), **options)
    return buffer.getvalue()


def bar_image(size=(120, 160), dark_ink=True) -> np.ndarray:
    """A thick vertical stroke: gray in [0, 1]."""
    gray = np.ones(size[::-1], dtype=np.float32) if dark_ink else np.zeros(size[::-1], np.float32)
    gray[30:130, 50:66] = 0.0 if dark_ink else 1.0
    return gray


# --- 1. decoding -------------------------------------------------------------------------

@pytest.mark.parametrize("blob, message", [
    (b"", "not an image"),
    (b"hello, I am text", "not an image"),
    (png_bytes(Image.new("L", (64, 64), 200))[:60], "corrupt or truncated"),
])
def test_unreadable_inputs_are_clear_errors(blob: bytes, message: str):
    with pytest.raises(ImageDecodeError, match=message):
        open_image(blob)


def test_missing_file_and_directory(tmp_path: Path):
    with pytest.raises(ImageDecodeError, match="no such file"):
        open_image(tmp_path / "nope.png")
    with pytest.raises(ImageDecodeError, match="directory"):
        open_image(tmp_path)


def test_huge_dimensions_are_refused_before_decoding():
    bomb = png_bytes(Image.new("1", (20000, 20000)), optimize=True)
    assert len(bomb) < 200_000  # small file, 400 megapixels
    with pytest.raises(ImageDecodeError, match=r"pixels|decompression bomb"):
        open_image(bomb)


def test_animated_gif_uses_the_first_frame():
    frames = [Image.new("L", (40, 40), 255), Image.new("L", (40, 40), 0)]
    blob = png_bytes(frames[0], format="GIF", save_all=True, append_images=frames[1:])
    assert open_image(blob).convert("L").getpixel((5, 5)) == 255


# --- 2. grayscale ------------------------------------------------------------------------

def test_transparent_background_is_white():
    rgba = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
    rgba.putpixel((10, 10), (0, 0, 0, 255))
    gray = to_gray(rgba)
    assert gray[0, 0] == 1.0 and gray[10, 10] == 0.0
    palette = rgba.convert("P")
    palette.info["transparency"] = palette.getpixel((0, 0))
    assert to_gray(Image.open(io.BytesIO(png_bytes(palette))))[0, 0] == 1.0


def test_sixteen_bit_images_use_their_full_range():
    values = np.array([[0, 32768, 65535]], dtype=np.uint16)
    image = Image.open(io.BytesIO(png_bytes(Image.fromarray(values))))
    assert to_gray(image).ravel().tolist() == pytest.approx([0.0, 0.5, 1.0], abs=1e-3)


# --- 3. ink ------------------------------------------------------------------------------

def test_polarity_is_detected_both_ways():
    dark_on_light = to_ink(bar_image(dark_ink=True))
    light_on_dark = to_ink(bar_image(dark_ink=False))
    assert dark_on_light[80, 58] > 0.95 and dark_on_light[5, 5] == 0.0
    np.testing.assert_allclose(dark_on_light, light_on_dark, atol=1e-6)


@pytest.mark.parametrize("dark_ink", [True, False])
def test_a_bold_digit_that_fills_its_crop_is_still_the_ink(dark_ink: bool):
    # a thick ring covering 60% of a 16x16 crop, as USPS digits do: the border is background
    yy, xx = np.mgrid[:16, :16]
    ring = np.hypot(yy - 7.5, xx - 7.5)
    stroke = (ring > 2) & (ring < 7.4)
    assert stroke.mean() > 0.5
    gray = np.where(stroke, 0.0, 1.0) if dark_ink else np.where(stroke, 1.0, 0.0)
    ink = to_ink(gray.astype(np.float32))
    assert ink[7, 2] > 0.9 and ink[7, 7] == 0 and ink[0, 0] == 0


def test_uneven_light_leaves_a_clean_background():
    gray = bar_image() * np.linspace(0.45, 1.0, 120)[None, :]  # shadow on the left
    gray[30:130, 50:66] = 0.05
    ink = to_ink(gray.astype(np.float32))
    assert ink[:, :40].max() == 0 and ink[:, 80:].max() == 0
    assert ink[80, 58] > 0.7


def test_blank_and_faint_texture_have_no_ink():
    rng = np.random.default_rng(0)
    assert not to_ink(np.ones((50, 50), np.float32)).any()
    texture = (0.8 + rng.normal(0, 0.02, (200, 200))).astype(np.float32)
    assert not to_ink(texture).any()
    assert preprocess(Image.new("RGB", (300, 200), "white")) is None


def test_a_dot_or_a_thin_line_on_a_big_page():
    page = np.full((100, 100), 255, np.uint8)
    page[50, 50] = 0
    assert preprocess(page) is None  # a dot is not a digit
    big = np.full((600, 600), 255, np.uint8)
    big[200:400, 300:302] = 0  # a thin "1" covering 0.1% of the page
    digit = preprocess(big)
    assert digit is not None and digit[:, 13:15].mean() > 0.5 and digit[:, :8].max() == 0


def test_unusual_modes_are_read_or_refused_cleanly():
    values = np.ones((50, 50), np.float32)
    values[10:40, 20:25] = 0
    values[0, 0] = np.nan
    assert preprocess(Image.fromarray(values, mode="F")) is not None
    with pytest.raises(ImageDecodeError, match="unsupported image mode"):
        to_gray(Image.new("LAB", (10, 10)))


def test_a_solid_wedge_is_one_piece():
    """Its ink profile rises steadily, with no thin column to cut at, so it stays whole."""
    wedge = np.tril(np.ones((50, 100), np.float32), k=0)[:, ::-1].copy()
    for judge in (None, lambda digits: [0.5] * len(digits)):
        pieces = split_digits(wedge, judge=judge)
        assert len(pieces) == 1
        assert pieces[0].box == (50, 0, 100, 50) and np.array_equal(pieces[0].ink, wedge)


def test_specks_are_removed():
    gray = bar_image()
    gray[5, 5] = gray[150, 100] = 0.0  # two dust specks
    ink = to_ink(gray)
    assert ink[5, 5] == 0 and ink[150, 100] == 0 and ink[80, 58] > 0.95


# --- 4-6. crop, 20 px box, centre of mass -------------------------------------------------

def test_crop_box_and_centre():
    ink = np.zeros((100, 100), np.float32)
    ink[10:70, 40:55] = 1.0
    crop = crop_to_ink(ink)
    assert crop.shape == (60, 15)
    box = fit_box(crop)
    assert max(box.shape) == 20 and box.shape[1] in (5, 6, 7)  # aspect kept (within rounding)
    field = centre_by_mass(box)
    rows, cols = np.indices(field.shape)
    assert (field * rows).sum() / field.sum() == pytest.approx(13.5, abs=0.5)
    assert (field * cols).sum() / field.sum() == pytest.approx(13.5, abs=0.5)


def test_mnist_digits_come_back_as_themselves(data_root: Path):
    from digitrec.data import load_split

    images, _ = load_split("mnist", "test", data_root)
    errors = []
    for digit in images[:50]:
        # dark ink on white paper, four times larger: the way a scan of it would look
        scan = Image.fromarray(255 - digit).resize((112, 112), Image.BICUBIC)
        errors.append(np.abs(preprocess(scan) - digit / 255).mean())
    assert np.mean(errors) < 0.08 and max(errors) < 0.15  # mean abs pixel error


def test_working_size_follows_the_digit(data_root: Path):
    """A digit that fills the image is read at about QUICK_SIZE px, a small digit on a large
    page at the full working size; both come out like the digit itself."""
    from digitrec.data import load_split

    errors = []
    for digit in load_split("mnist", "test", data_root)[0][:20]:
        drawing = Image.fromarray(255 - digit).resize((280, 280), Image.BILINEAR)
        page = np.full((1200, 1600), 235, np.uint8)
        page[500:612, 700:812] = np.minimum(235, np.asarray(drawing.resize((112, 112))))
        assert max(digit_ink(drawing).shape) <= QUICK_SIZE
        assert max(digit_ink(page).shape) == WORK_SIZE
        errors += [np.abs(preprocess(image) - digit / 255).mean() for image in (drawing, page)]
    assert np.mean(errors) < 0.08 and max(errors) < 0.15  # as for scans, below


def test_tiny_binary_digits_are_enlarged_before_their_ink_is_found(data_root: Path):
    """A digit stored as a 16x16 bitmap (as some digit sets keep them) comes out closer to the
    digit itself through the enlarged path than read at its own 16 px."""
    from digitrec.data import load_split

    enlarged, direct = [], []
    for digit in load_split("mnist", "test", data_root)[0][:50]:
        gray = np.asarray(Image.fromarray(digit).resize((16, 16), Image.BILINEAR), np.float32)
        bitmap = Image.fromarray(np.where(gray > 0.35 * gray.max(), 0, 255).astype(np.uint8))
        enlarged.append(np.abs(preprocess(bitmap) - digit / 255).mean())
        direct.append(np.abs(normalise_digit(to_ink(to_gray(bitmap))) - digit / 255).mean())
    assert np.mean(enlarged) < 0.075 and np.mean(enlarged) < np.mean(direct)


def test_only_tiny_images_are_enlarged_by_a_whole_factor():
    tiny = np.random.default_rng(0).random((16, 12)).astype(np.float32)
    assert enlarge(tiny).shape == (64, 48)
    assert enlarge(np.zeros((28, 20), np.float32)).shape == (28, 20)
    assert max(digit_ink(Image.fromarray((tiny * 255).astype(np.uint8))).shape) == 64


def test_shrink_averages_whole_blocks():
    gray = np.random.default_rng(0).random((280, 300)).astype(np.float32)
    small = shrink(gray, 128)
    assert small.shape == (94, 100)  # by 3, the smallest whole factor that fits
    assert small[0, 0] == pytest.approx(gray[:3, :3].mean(), abs=1e-5)
    assert shrink(gray, 300) is gray


def test_otsu_threshold_puts_each_value_on_one_side():
    values = np.array([0.6] * 50 + [1.0] * 950, np.float32)
    assert 0.6 < otsu_threshold(values) <= 1.0  # 0.6 below, 1.0 at or above
    assert otsu_threshold(np.full(10, 0.3, np.float32)) > 0.3  # one value: all below
    assert otsu_threshold(np.array([2.0, 3.0])) == pytest.approx(1 + 1 / 256)  # clipped to 1
    assert otsu_threshold(np.array([-1.0, 0.0, 1.0, 1.5])) == pytest.approx(1 / 256)  # 0 below


def test_percentiles_are_numpys_to_the_last_bit():
    rng = np.random.default_rng(0)
    for size in (1, 2, 3, 4, 7, 100, 1001):
        values = (rng.random(size) ** 3).astype(np.float32)
        q = [0, 10, 25, 50, 75, 90, 100]
        assert percentiles(values, q) == np.percentile(values, q).tolist()
        for one in q:  # a single q: one value, in float32 as numpy computes it
            single = percentiles(values, one)
            assert single == np.percentile(values, one) and single.dtype == np.float32


def test_flat_background_is_a_constant_and_a_ramp_is_fitted(monkeypatch):
    import digitrec.preprocess.background as pp

    ink = np.full((100, 100), 0.2, np.float32)
    ink[20:80, 45:55] = 1.0
    with monkeypatch.context() as patch:
        patch.setattr(pp, "_least_squares", None)  # a flat background needs no fit at all
        assert np.all(smooth_background(ink) == np.float32(0.2))
    ramp = ink + np.linspace(0, 0.3, 100, dtype=np.float32)[None, :]
    background = smooth_background(ramp)
    assert background[:, 90].mean() - background[:, 10].mean() == pytest.approx(0.24, abs=0.03)


def test_tiny_noise_images_never_crash():
    rng = np.random.default_rng(0)
    for _ in range(200):  # thinning a blob with no stroke in it can leave no ink: None, no crash
        noise = (rng.random(tuple(rng.integers(2, 12, 2))) * 255).astype(np.uint8)
        digit = preprocess(noise)
        assert digit is None or digit.shape == (28, 28)


def test_background_surface_matches_its_fitted_terms():
    coefficients = np.random.default_rng(1).normal(size=6)
    surface = _surface(coefficients, 7, 9)
    assert surface.shape == (7, 9)
    assert np.allclose(surface.ravel(), _surface_terms(7, 9) @ coefficients, atol=1e-5)


# --- connected components and splitting ---------------------------------------------------

def reference_components(mask: np.ndarray) -> int:
    seen, count = np.zeros_like(mask), 0
    for start in zip(*np.nonzero(mask), strict=True):
        if seen[start]:
            continue
        count += 1
        queue = deque([start])
        seen[start] = True
        while queue:
            y, x = queue.popleft()
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    ny, nx = y + dy, x + dx
                    if (0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1]
                            and mask[ny, nx] and not seen[ny, nx]):
                        seen[ny, nx] = True
                        queue.append((ny, nx))
    return count


@pytest.mark.parametrize("seed", range(5))
def test_connected_components_match_a_flood_fill(seed: int):
    mask = np.random.default_rng(seed).random((40, 60)) < 0.45 + 0.05 * seed
    labels, count = connected_components(mask)
    assert count == reference_components(mask)
    assert ((labels > 0) == mask).all() and set(np.unique(labels)) == set(range(count + 1))
    h, w = mask.shape
    for dy, dx in ((0, 1), (1, -1), (1, 0), (1, 1)):  # 8-neighbours have the same label
        a = labels[:h - dy, max(0, -dx):w - max(0, dx)]
        b = labels[dy:, max(0, dx):w + min(0, dx)]
        both = (a > 0) & (b > 0)
        assert (a[both] == b[both]).all()
    # with as many labels as true components, that makes the labels exactly the components
    first_pixels = [np.flatnonzero(labels == k)[0] for k in range(1, count + 1)]
    assert first_pixels == sorted(first_pixels)  # numbered in raster order
    assert connected_components(np.zeros((3, 4), bool))[1] == 0


def test_winding_strokes_and_combs_are_one_component_each():
    serpentine = np.zeros((41, 30), bool)
    serpentine[::4, 1:-1] = True  # rows joined at alternating ends
    serpentine[1::4, -2] = serpentine[2::4, -2] = serpentine[3::4, 1] = True
    comb = np.zeros((30, 61), bool)
    comb[:-1, ::2] = True  # teeth that meet only in the last row
    comb[-1] = True
    for mask in (serpentine[:-3], comb, np.hstack([comb, np.zeros((30, 2), bool), comb])):
        labels, count = connected_components(mask)
        assert count == reference_components(mask) and ((labels > 0) == mask).all()


def test_separate_digits_are_split_left_to_right():
    ink = np.zeros((40, 200), np.float32)
    for k, x in enumerate((150, 10, 80)):  # drawn out of order
        ink[5:35, x:x + 12 + 4 * k] = 1.0
    segments = split_digits(ink)
    assert [s.box[0] for s in segments] == [10, 80, 150]


def test_broken_stroke_joins_its_digit():
    ink = np.zeros((40, 100), np.float32)
    ink[8:35, 20:26] = 1.0  # the stem
    ink[3:6, 18:34] = 1.0  # a bar above it, not touching: a broken "7" or "5"
    ink[8:35, 60:66] = 1.0  # another digit
    segments = split_digits(ink)
    assert len(segments) == 2 and segments[0].box[1] == 3


def test_a_broken_stroke_joins_the_digit_whose_columns_it_shares():
    ink = np.zeros((42, 60), np.float32)
    ink[5:35, 10:22] = 1.0  # a digit
    ink[37:40, 12:18] = 1.0  # a stroke broken off its foot
    ink[5:35, 30:42] = 1.0  # the next digit

    def judge(digits: list[np.ndarray]) -> list[float]:
        """Sure of wide ink: it would join the stroke to the far digit."""
        spans = [np.ptp(np.flatnonzero((d > 0.1).any(0))) for d in digits]
        return [0.9 if span > 15 else 0.1 for span in spans]

    assert [s.box for s in split_digits(ink, judge)] == [(10, 5, 22, 40), (30, 5, 42, 35)]


def test_a_short_stroke_is_never_cut_out_as_a_digit():
    ink = np.zeros((40, 60), np.float32)
    ink[5:35, 10:16] = 1.0  # a stem one line height (30 px) tall
    ink[5:10, 16:34] = 1.0  # and a bar along its top, a sixth of that tall: a "7"

    def judge(digits: list[np.ndarray]) -> list[float]:
        """Fooled by the bar: sure of anything short (a bar) or thin (a 1), not of the 7."""
        rows, cols = ([int((d > 0.1).any(axis).sum()) for d in digits] for axis in (1, 0))
        return [0.9 if r < 10 or c < 8 else 0.1 for r, c in zip(rows, cols, strict=True)]

    assert [s.box for s in split_digits(ink, judge)] == [(10, 5, 34, 35)]


def test_a_cut_keeps_a_digits_own_broken_stroke():
    ink = np.zeros((42, 60), np.float32)
    ink[5:35, 10:24] = 1.0  # a digit
    ink[5:35, 26:40] = 1.0  # and its neighbour,
    ink[20:22, 24:26] = 1.0  # touching it: this ink must be cut
    ink[37:39, 14:18] = 1.0  # a small broken-off stroke below the first digit, not touching

    def judge(digits: list[np.ndarray]) -> list[float]:
        """Sure of a piece as wide as one of the digits, not of wider or narrower ones."""
        return [0.9 if 7 <= (d > 0.1).any(0).sum() <= 11 else 0.1 for d in digits]

    first, second = split_digits(ink, judge)
    assert first.box == (10, 5, 24, 39) and first.ink[37:39, 14:18].all()
    assert second.box[2] == 40
