"""The old import path of the eviction run page, which now lives in its analysis package
(:mod:`circuits.eviction.page`) and is found through the registry of analyses."""

from circuits.eviction.page import *  # noqa: F403
from circuits.eviction.page import eviction_view  # noqa: F401
