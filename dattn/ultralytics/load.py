"""Load a YOLO checkpoint, trained with the recipe, with dattn, or without the block."""

from __future__ import annotations

from pathlib import Path

from dattn.errors import CheckpointError
from dattn.ultralytics.checkpoint import check_checkpoint
from dattn.ultralytics.register import register, restricted_loading


def load(weights: str | Path, trust: bool = False):
    """An `ultralytics.YOLO` for a local `.pt` checkpoint; raises CheckpointError naming the file if it cannot load.

    By default nothing in the file runs: it is unpickled with torch's weights_only unpickler and an allowlist
    (see dattn.ultralytics.checkpoint), and a file that needs more is refused. `trust=True` loads it as
    ultralytics does, with pickle's own unpickler: only for files from a source you trust.
    """
    register()
    weights = Path(weights)
    check_checkpoint(weights, trust)  # says why the file cannot be loaded, before ultralytics does
    if weights.suffix != ".pt":
        raise CheckpointError(f"{weights}: ultralytics checkpoints end in .pt")
    from ultralytics import YOLO
    from ultralytics.nn.tasks import BaseModel

    try:
        with restricted_loading(not trust):
            yolo = YOLO(str(weights))
    except (TypeError, AttributeError, ModuleNotFoundError) as e:  # ultralytics' own load errors, reduced to one line
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{weights}: {reason}") from None
    if not isinstance(yolo.model, BaseModel):  # e.g. torch.save(model.model): ultralytics loads its bare layer list
        raise CheckpointError(f"{weights}: not an ultralytics checkpoint (it holds a {type(yolo.model).__name__}, not the "
                              "dict that YOLO(...).save() and the trainer write); save it with YOLO(...).save('best.pt')")
    return yolo
