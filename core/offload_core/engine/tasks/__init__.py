"""Tasks: the pre-process → run → post-process shape of each kind of model."""
