"""Decoding any image safely, and its grey levels in [0, 1]."""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

from ..errors import ImageDecodeError, ImageTooLargeError, UnsupportedImageError

MAX_PIXELS = 50_000_000  # larger images are refused before decoding

Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow's own bomb check (error at twice this)

ImageSource = str | os.PathLike | bytes | Image.Image | np.ndarray


def open_image(source: ImageSource) -> Image.Image:
    """Decode an image file, bytes or array; anything unreadable is an ImageDecodeError."""
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, np.ndarray):
        return Image.fromarray(_as_uint8(source))
    name = "<bytes>" if isinstance(source, bytes) else str(source)
    try:
        image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        if image.width * image.height > MAX_PIXELS:
            raise ImageTooLargeError(f"{name}: {image.width}x{image.height} pixels is more than "
                                   f"the {MAX_PIXELS:,} allowed")
        frame = next(ImageSequence.Iterator(image))  # animated images: the first frame
        frame.load()
        return frame
    except ImageDecodeError:
        raise
    except FileNotFoundError:
        raise ImageDecodeError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ImageDecodeError(f"{name}: is a directory") from None
    except UnidentifiedImageError:
        raise UnsupportedImageError(f"{name}: not an image format Pillow can decode") from None
    except Image.DecompressionBombError as e:
        raise ImageTooLargeError(f"{name}: refused as a decompression bomb ({e})") from None
    except PermissionError:
        raise ImageDecodeError(f"{name}: permission denied") from None
    except (OSError, SyntaxError, ValueError) as e:  # truncated or corrupt data
        raise ImageDecodeError(f"{name}: corrupt or truncated image ({e})") from None


def _as_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    array = np.asarray(array, dtype=np.float32)
    scale = 255.0 if array.max(initial=0) <= 1.0 else 1.0
    return np.clip(array * scale, 0, 255).astype(np.uint8)


def to_gray(image: Image.Image) -> np.ndarray:
    """Grayscale float32 in [0, 1] (1 = white); alpha is composited over white."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        values = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0, posinf=0.0,
                               neginf=0.0)
        top = 255.0 if image.mode != "F" and values.max(initial=0) <= 255 else None
        if image.mode.startswith("I;16") or (image.mode == "I" and top is None):
            top = 65535.0
        if top is None:  # float image: use its own range
            low, high = float(values.min(initial=0)), float(values.max(initial=1))
            return (values - low) / max(high - low, 1e-6)
        return np.clip(values / top, 0, 1)
    try:
        if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
            rgba = image.convert("RGBA")
            image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
        gray = np.asarray(image if image.mode == "L" else image.convert("L"), dtype=np.float32)
        return np.divide(gray, 255.0, out=gray)
    except ValueError as e:  # modes Pillow cannot convert to grayscale, e.g. LAB
        raise ImageDecodeError(f"unsupported image mode {image.mode}: {e}") from None
