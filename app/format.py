"""The explorer's number and axis formatting, which lives in :mod:`interp.runs.format` so that
analysis pages (under ``circuits/``) share it without importing the app."""

from interp.runs.format import *  # noqa: F403
from interp.runs.format import __all__  # noqa: F401
