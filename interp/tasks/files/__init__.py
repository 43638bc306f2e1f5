"""A researcher's own tasks: files and folders in the formats the field uses, read into task
families that every analysis accepts (see the "Bring your own task" page of the docs)."""

from interp.tasks.files.load import TaskFileOptions, TaskOrigin, from_file, from_pairs

__all__ = ["TaskFileOptions", "TaskOrigin", "from_file", "from_pairs"]
