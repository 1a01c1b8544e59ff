"""Register DAttention into ultralytics as soon as ultralytics loads, without importing it (or torch) first.

It sits beside dattn.ultralytics, not in it, so that `import dattn` (and with it `from dattn.runtime import ...`)
loads no part of dattn.ultralytics until ultralytics itself is imported."""

import importlib.abc
import importlib.util
import sys

_TASKS = "ultralytics.nn.tasks"  # where parse_model and the checkpoint loader live


def _register() -> None:
    from dattn.ultralytics.register import register

    register()


class _RegisterAfterTasksLoads(importlib.abc.MetaPathFinder):
    """Finds ultralytics.nn.tasks with the other finders and registers right after the module has run."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != _TASKS:
            return None
        sys.meta_path.remove(self)  # once is enough, and find_spec below must not come back here
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        run_module = spec.loader.exec_module

        def run_then_register(module):
            run_module(module)
            _register()

        spec.loader.exec_module = run_then_register
        return spec


def register_when_ultralytics_loads() -> None:
    """Register now if ultralytics is loaded, else as soon as it is."""
    if _TASKS in sys.modules:
        _register()
    elif not any(isinstance(finder, _RegisterAfterTasksLoads) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterTasksLoads())
