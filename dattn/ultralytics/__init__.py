"""Ultralytics integration: runtime registration, packaged model yamls and checkpoint loading."""

from dattn.ultralytics.checkpoint import CheckpointError, map_recipe_classes
from dattn.ultralytics.load import load
from dattn.ultralytics.register import CONFIG_DIR, register

__all__ = ["CONFIG_DIR", "CheckpointError", "load", "map_recipe_classes", "register"]
