"""cdfs: a container runtime whose whole API is a mounted filesystem."""

__version__ = "0.1.0"
