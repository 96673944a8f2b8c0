"""digitrec: handwritten digit recognition with convolutional networks."""

__version__ = "0.1.0"
