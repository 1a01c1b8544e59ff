"""Register DAttention into a stock ultralytics at runtime: yaml building, packaged configs, checkpoint loading.

Nothing in site-packages is edited; three names in `ultralytics.nn.tasks` are rebound:
- `DAttention`, which `parse_model` looks up by the name written in a model yaml;
- `check_yaml`, so the configs shipped in `dattn/ultralytics/cfg` are found by name;
- `torch_safe_load`, so recipe checkpoints have their pasted classes mapped before unpickling.
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path

from dattn.nn import DAttention
from dattn.ultralytics.checkpoint import map_recipe_classes

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


def _map_classes_before_loading(torch_safe_load):
    @functools.wraps(torch_safe_load)
    def torch_safe_load_with_dattn(weight, *args, **kwargs):
        if Path(str(weight)).is_file():  # names of hub assets go straight to ultralytics
            map_recipe_classes(weight)
        return torch_safe_load(weight, *args, **kwargs)

    torch_safe_load_with_dattn.dattn_wrapped = True
    return torch_safe_load_with_dattn


def register() -> None:
    """Make ultralytics build, load and train models with DAttention. Safe to call more than once."""
    import ultralytics.nn.tasks as tasks

    tasks.DAttention = DAttentionFromYaml
    if not getattr(tasks.check_yaml, "dattn_wrapped", False):
        tasks.check_yaml = _find_packaged_configs(tasks.check_yaml)
    if not getattr(tasks.torch_safe_load, "dattn_wrapped", False):
        tasks.torch_safe_load = _map_classes_before_loading(tasks.torch_safe_load)
