"""Exceptions that are part of digitrec's interface: each maps to a clear CLI message."""


class DigitrecError(Exception):
    """Base class: a failure the user can act on; the CLI prints it without a traceback."""


class DataIntegrityError(DigitrecError):
    """A data file is corrupt, truncated or not the file it claims to be."""


class DataUnavailableError(DigitrecError):
    """A dataset is neither on disk nor downloadable."""


class RunDirError(DigitrecError):
    """A run directory is missing, incomplete or would be overwritten."""


class ImageDecodeError(DigitrecError):
    """An input is not a readable image (corrupt, truncated, unsupported, or too large)."""


class UnsupportedImageError(ImageDecodeError):
    """An input is in no image format Pillow can decode."""


class ImageTooLargeError(ImageDecodeError):
    """An image has more pixels than allowed, or is a decompression bomb."""


class ConfigError(DigitrecError, ValueError):
    """Options that cannot work: an unknown name, an impossible size or range, options that
    exclude each other (in training, prediction, serving or data loading)."""


class ModelError(DigitrecError):
    """A model file that cannot be used (not ONNX, damaged, or not a 28x28 digit classifier)."""


class ExportError(DigitrecError):
    """An exported model failed its checks (parity with PyTorch, int8 accuracy) and was not kept."""


class RegistryError(DigitrecError):
    """A dataset or model name registered twice, or a plug-in that cannot be loaded."""
