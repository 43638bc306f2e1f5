"""The old import path of the block relevance run page, which now lives in its analysis package
(:mod:`circuits.block_relevance.page`) and is found through the registry of analyses."""

from circuits.block_relevance.page import *  # noqa: F403
from circuits.block_relevance.page import block_relevance_view  # noqa: F401
