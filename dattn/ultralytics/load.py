"""Load a YOLO checkpoint, trained with the recipe, with dattn, or without the block."""

from __future__ import annotations

from pathlib import Path

from dattn.ultralytics.checkpoint import CheckpointError, map_recipe_classes
from dattn.ultralytics.register import register


def load(weights: str | Path):
    """An `ultralytics.YOLO` for a local `.pt` checkpoint; raises CheckpointError naming the file if it cannot load."""
    register()
    weights = Path(weights)
    map_recipe_classes(weights)  # checks the file and says why it cannot be read, before ultralytics does
    if weights.suffix != ".pt":
        raise CheckpointError(f"{weights}: ultralytics checkpoints end in .pt")
    from ultralytics import YOLO

    try:
        return YOLO(str(weights))
    except (TypeError, AttributeError, ModuleNotFoundError) as e:  # ultralytics' own load errors, reduced to one line
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{weights}: {reason}") from None
