"""Helpers named as in FlorDB (`flor.utils.latest`)."""

from flor import latest

__all__ = ["latest"]
