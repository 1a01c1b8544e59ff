"""The detection head of an ultralytics model, torch side: which one it is, the branch the export takes, and export
mode, so that the graph has the one output ultralytics' own export has. The output layouts themselves are stated in
dattn.runtime.heads, whose names this module maps each head to.

- Detect (YOLOv3-v9, YOLO11, YOLO26) and its task variants: the anchor grid, or, for a head with a one-to-one
  branch (YOLO26, YOLOv10), that branch's top-k when it is selected (--end2end, or saved so);
- RTDETRDecoder: its queries (ultralytics 8.3) or its top-k (8.4, which has `RTDETRDecoder.postprocess`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dattn.errors import ConfigError
from dattn.runtime.heads import NOT_SERVED

SERVED_TASKS = ("detect",)  # the runtime decodes boxes, scores and classes


@dataclass(frozen=True)
class HeadInfo:
    """The head as exported: `name` in dattn.runtime.heads, its class, the model's task, and the branch taken."""

    name: str
    module: str
    task: str
    end2end: bool

    @property
    def not_served(self) -> str | None:
        """What the export carries that verification and the runtime leave alone, or None."""
        return NOT_SERVED.get(self.task)


def model_task(model: torch.nn.Module) -> str:
    from ultralytics.nn.tasks import guess_model_task

    return guess_model_task(model)


def check_task(model: torch.nn.Module, source) -> str:
    """The model's task; ConfigError for one whose export dattn cannot check (classification, semantic maps, depth)."""
    task = model_task(model)
    if task not in SERVED_TASKS and task not in NOT_SERVED:
        raise ConfigError(f"{source}: a {task} model; dattn-export exports and verifies detectors (and the boxes of "
                          f"segment, pose and obb models); export it with ultralytics instead: yolo export "
                          f"model={source} format=onnx")
    return task


def _is_rtdetr(head) -> bool:
    from ultralytics.nn.modules.head import RTDETRDecoder

    return isinstance(head, RTDETRDecoder)


def _is_detect(head) -> bool:
    from ultralytics.nn.modules.head import Detect

    return isinstance(head, Detect)


def _select_branch(head, end2end: bool | None, source) -> bool:
    """Put a Detect head on the branch asked for (None: as saved); returns whether it is the one-to-one branch."""
    import ultralytics

    has_one2one = getattr(head, "one2one_cv2", None) is not None
    saved = bool(getattr(head, "end2end", False))
    if end2end is None or end2end == saved:
        return saved
    if end2end and not has_one2one:
        raise ConfigError(f"--end2end: {source}'s {type(head).__name__} head has no NMS-free one-to-one branch "
                          "(YOLO26 and YOLOv10 heads have one); remove --end2end")
    # ultralytics 8.4 makes the branch a property of the head; in 8.3 each head class predicts one way only.
    if not isinstance(getattr(type(head), "end2end", None), property):
        raise ConfigError(f"--{'' if end2end else 'no-'}end2end: ultralytics {ultralytics.__version__}'s "
                          f"{type(head).__name__} head predicts {'with NMS' if saved else 'end-to-end'} only; remove "
                          "the flag (ultralytics 8.4 can switch it)")
    head.end2end = end2end
    return end2end


def prepare_head(model: torch.nn.Module, dynamic: bool, end2end: bool | None, imgsz: tuple[int, int] | None,
                 source="the model") -> HeadInfo:
    """Put `model`'s head (in place: pass a copy) on its branch and in ONNX export mode, as ultralytics' exporter does.

    Call before fusing: fusing drops the branch not taken. imgsz clamps max_det to the anchors an input of that size
    has (None: left as it is, for a reference that runs at many sizes).
    """
    head = model.model[-1]
    task = check_task(model, source)
    if _is_rtdetr(head):
        if end2end is not None:
            raise ConfigError(f"--{'' if end2end else 'no-'}end2end: {source} is an RT-DETR, whose decoder predicts "
                              "without NMS always; remove the flag")
        chosen, name = False, "rtdetr-topk" if hasattr(head, "postprocess") else "rtdetr"
    elif _is_detect(head):
        chosen = _select_branch(head, end2end, source)
        name = "topk" if chosen else "anchors"
    else:
        raise ConfigError(f"{source}: its last layer is a {type(head).__name__}, not a detection head this dattn knows "
                          "(Detect and its variants, v10Detect, RTDETRDecoder)")
    head.export, head.dynamic, head.format = True, dynamic, "onnx"
    if imgsz is not None and (chosen or name == "rtdetr-topk"):
        anchors = head.num_queries if _is_rtdetr(head) else sum(
            (imgsz[0] // int(s)) * (imgsz[1] // int(s)) for s in model.stride.tolist())
        head.max_det = min(int(getattr(head, "max_det", 300)), anchors)  # a top-k cannot pick more than there are
    return HeadInfo(name, type(head).__name__, task, chosen)


def sampling_sites(model: torch.nn.Module, example: torch.Tensor) -> dict[str, int]:
    """How many grid-sample calls one forward pass makes, by where they sit: "DAttention", "RT-DETR decoder"
    or the module's class name. It runs a copy: a forward pass leaves state on heads (cached anchors) that a trace
    must not see. Call it before exporting: torch.export leaves state there that an eager pass cannot use."""
    import copy

    import torch.nn.functional as F

    model = copy.deepcopy(model)
    from dattn.nn import DAttention

    stack, counts = [], {}
    original = F.grid_sample

    def counted(*args, **kwargs):
        owner = next((m for m in reversed(stack) if isinstance(m, DAttention) or _is_rtdetr(m)), stack[-1] if stack else None)
        where = "DAttention" if isinstance(owner, DAttention) else "RT-DETR decoder" if _is_rtdetr(owner) else type(owner).__name__
        counts[where] = counts.get(where, 0) + 1
        return original(*args, **kwargs)

    def enter(module, inputs):
        stack.append(module)

    def leave(module, inputs, output):
        stack.pop()  # returns nothing: a forward hook's return value would replace the output

    hooks = [h for m in model.modules() for h in (m.register_forward_pre_hook(enter), m.register_forward_hook(leave))]
    F.grid_sample = counted
    try:
        with torch.no_grad():
            model(example)
    finally:
        F.grid_sample = original
        for hook in hooks:
            hook.remove()
    return counts
