"""The old import path of the task vectors run page, which now lives in its analysis package
(:mod:`circuits.task_vectors.page`) and is found through the registry of analyses."""

from circuits.task_vectors.page import *  # noqa: F403
from circuits.task_vectors.page import task_vectors_view  # noqa: F401
