"""Register DAttention into a stock ultralytics at runtime: yaml building, packaged configs, checkpoint loading.

Nothing in site-packages is edited; three names in `ultralytics.nn.tasks` are rebound:
- `DAttention`, which `parse_model` looks up by the name written in a model yaml;
- `check_yaml`, so the configs shipped in `dattn/ultralytics/cfg` are found by name;
- `torch_safe_load`, so that checkpoints load with the recipe's classes mapped to dattn's, restricted
  (no code from the file runs) when `dattn.load` or ultralytics' own `safe_only`/ULTRALYTICS_SAFE_LOAD ask for it.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
from pathlib import Path

from dattn.nn import DAttention
from dattn.ultralytics.checkpoint import load_restricted, load_trusted, recipe_class, referenced_globals

CONFIG_DIR = Path(__file__).parent / "cfg"


def _channels_of_row_being_parsed() -> int:
    """The input channel count of the yaml row that ultralytics' parse_model is building now.

    parse_model passes only the row's own args to blocks it does not know; the recipe patched it to
    prepend `ch[f]`. Reading `ch` and `f` from its frame gives the same value without patching it.
    """
    frame = inspect.currentframe()
    while frame is not None:
        if frame.f_code.co_name == "parse_model" and {"ch", "f"} <= frame.f_locals.keys():
            ch, f = frame.f_locals["ch"], frame.f_locals["f"]
            if not isinstance(f, int):
                raise ValueError(f"DAttention takes one input, but its yaml row reads from {f}")
            return ch[f]
        frame = frame.f_back
    raise TypeError("DAttentionFromYaml is built by ultralytics' parse_model; elsewhere use dattn.nn.DAttention(channels)")


class DAttentionFromYaml(DAttention):
    """The `DAttention` of model yamls: builds `DAttention(input_channels, *row_args)` like the recipe."""

    def __new__(cls, *args, **kwargs):
        # Returns a plain DAttention, so models and their checkpoints never reference this class.
        return DAttention(_channels_of_row_being_parsed(), *args, **kwargs)


def _find_packaged_configs(check_yaml):
    @functools.wraps(check_yaml)
    def check_yaml_with_dattn_configs(file, *args, **kwargs):
        packaged = CONFIG_DIR / Path(str(file)).name
        if not Path(str(file)).exists() and packaged.is_file():
            return str(packaged)
        return check_yaml(file, *args, **kwargs)

    check_yaml_with_dattn_configs.dattn_wrapped = True
    return check_yaml_with_dattn_configs


# Set by dattn.load for the loads it makes: True unless the caller trusts the file.
_restricted_by_dattn = contextvars.ContextVar("dattn_restricted_load", default=False)


@contextlib.contextmanager
def restricted_loading(restricted: bool):
    """While active, ultralytics' checkpoint loads in this thread (or task) are restricted, or not, as `restricted` says."""
    token = _restricted_by_dattn.set(restricted)
    try:
        yield
    finally:
        _restricted_by_dattn.reset(token)


def _ultralytics_asks_restricted(safe_only=None) -> bool:
    """ultralytics' own policy: torch_safe_load(safe_only=...), by default ULTRALYTICS_SAFE_LOAD (8.4; 8.3 has neither)."""
    if safe_only is None:
        import ultralytics.utils

        safe_only = getattr(ultralytics.utils, "SAFE_LOAD", False)
    return bool(safe_only)


def _load_with_dattn(torch_safe_load):
    @functools.wraps(torch_safe_load)
    def torch_safe_load_with_dattn(weight, *args, **kwargs):
        if not Path(str(weight)).is_file():  # names of hub assets go straight to ultralytics
            return torch_safe_load(weight, *args, **kwargs)
        if _restricted_by_dattn.get() or _ultralytics_asks_restricted(*args, **kwargs):
            return load_restricted(weight), str(weight)
        if not any(recipe_class(name) for name in referenced_globals(weight)):
            return torch_safe_load(weight, *args, **kwargs)  # nothing to map: ultralytics' own load, unchanged
        return load_trusted(weight), str(weight)

    torch_safe_load_with_dattn.dattn_wrapped = True
    return torch_safe_load_with_dattn


def register() -> None:
    """Make ultralytics build, load and train models with DAttention. Safe to call more than once."""
    import ultralytics.nn.tasks as tasks

    tasks.DAttention = DAttentionFromYaml
    if not getattr(tasks.check_yaml, "dattn_wrapped", False):
        tasks.check_yaml = _find_packaged_configs(tasks.check_yaml)
    if not getattr(tasks.torch_safe_load, "dattn_wrapped", False):
        tasks.torch_safe_load = _load_with_dattn(tasks.torch_safe_load)
