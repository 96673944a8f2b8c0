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


class ConfigError(DigitrecError, ValueError):
    """A training configuration that cannot work (unknown name, impossible sizes)."""
