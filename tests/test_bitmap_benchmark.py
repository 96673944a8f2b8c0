"""The bitmap benchmark's rendering: Semeion-style bitmaps, whatever the scan's polarity."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from bitmap_digits import as_bitmap


@pytest.mark.parametrize("dark_ink", [True, False])
@pytest.mark.parametrize("size", [16, 32])
def test_a_digit_becomes_a_binary_bitmap_that_fills_its_square(dark_ink: bool, size: int):
    gray = np.zeros((28, 28), np.float32)
    gray[4:24, 10:17] = 0.7  # a grey bar, lighter than full ink
    gray[4:8, 6:17] = 0.7
    if dark_ink:
        gray = 1 - gray
    bitmap = np.asarray(as_bitmap(gray, size))
    assert bitmap.shape == (size, size)
    assert set(np.unique(bitmap)) == {0, 255}
    ink = bitmap == 0  # black ink on white
    assert ink[0].any() and ink[-1].any() and ink[:, 0].any() and ink[:, -1].any()
    assert 0.3 < ink.mean() < 0.8
