"""Which class runs a model: `task:` in model.yaml is an import path or an `offload.tasks` entry point.

Built-in tasks are entry points of offload-core itself (see its pyproject), found the way a
user's are: `task: text-detection` and `task: my_app.tasks:Detector` go through the same code.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from offload_core.engine.tasks.base import Task

GROUP = "offload.tasks"


class TaskNotFoundError(LookupError):
    """A model.yaml names a task this installation cannot import."""


def installed_tasks() -> list[str]:
    """The task names registered as `offload.tasks` entry points, sorted."""
    return sorted({ep.name for ep in entry_points(group=GROUP)})


def task_class(name: str, model: str = "?") -> type[Task]:
    """The class for `name`: "package.module:Class", or the name of an `offload.tasks` entry point.

    A TaskNotFoundError says which model asked for what, and what the installation offers instead.
    """
    where = f"model {model!r} names task {name!r}"
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            found = getattr(importlib.import_module(module), attr)
        except ImportError as exc:
            raise TaskNotFoundError(f"{where}, but {module!r} cannot be imported ({exc}); is it installed?") from None
        except AttributeError:
            raise TaskNotFoundError(f"{where}, but module {module!r} has no {attr!r}") from None
    else:
        matches = list(entry_points(group=GROUP, name=name))
        if not matches:
            raise TaskNotFoundError(
                f"{where}, which is not an installed task ({', '.join(installed_tasks())}) "
                "nor an import path 'package.module:Class'"
            )
        found = matches[0].load()
    if not (isinstance(found, type) and issubclass(found, Task)):
        raise TaskNotFoundError(f"{where}, but that is {found!r}, not a subclass of offload_core.OnnxTask (or Task)")
    return found
