"""The task registry: the modalities Triptych trains and serves, by name.

The built-in tasks are packages here (image/, text/, speech/), each behind the contract in `base.py`
and imported only when first asked for. `register(task)` adds another from anywhere: the CLI, the
checkpoint loader, the card and the demo then know it too.
"""

from __future__ import annotations

import importlib

from training.tasks.base import InputError, Task

__all__ = ["InputError", "Task", "get_task", "register", "task_names", "unregister"]

BUILTIN = {"image": "training.tasks.image", "text": "training.tasks.text", "speech": "training.tasks.speech"}
_REGISTERED: dict[str, Task] = {}   # tasks added with register(), by name


def register(task: Task, *, replace: bool = False) -> Task:
    """Make `task` (an instance of a Task subclass) known by its name; returns it."""
    if not isinstance(task, Task) or not task.name:
        raise TypeError(f"{task!r}: register an instance of a training.tasks.Task subclass with a name")
    if not replace and (task.name in BUILTIN or task.name in _REGISTERED):
        raise ValueError(f"a task named {task.name!r} is already registered")
    _REGISTERED[task.name] = task
    return task


def unregister(name: str) -> None:
    _REGISTERED.pop(name, None)


def task_names() -> tuple[str, ...]:
    """Every task's name: the built-in ones first, in the demo's tab order, then the registered ones."""
    return tuple(BUILTIN) + tuple(n for n in _REGISTERED if n not in BUILTIN)


def get_task(name: str) -> Task:
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in BUILTIN:
        raise KeyError(name)
    return importlib.import_module(BUILTIN[name]).TASK
