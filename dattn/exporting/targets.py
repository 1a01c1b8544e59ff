"""The runtimes an export is meant for, what each parses, and the defaults chosen for it.

Facts from NVIDIA's release notes and onnx-tensorrt (see README, "Targets"):
- GridSample: TensorRT has no layer before 8.5; 10.x-11.1 parse opset-20+ mode="linear" as nearest (issue 4646).
- LayerNormalization (opset 17): parsed natively from TensorRT 8.6.
- Einsum: always rewritten to MatMul/Transpose, which every runtime parses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dattn.errors import ConfigError

SUPPORTED_OPSETS = range(11, 22)
GRID_SAMPLE_FORMS = ("auto", "native", "gather", "plugin")
EXPORTERS = ("torchscript", "dynamo")  # torch.onnx's tracer (deprecated by torch), and its torch.export-based exporter
DEFAULT_EXPORTER = "torchscript"  # chosen by measurement (same agreement, 4-9x faster): README, "Exporters"
NATIVE_GRID_SAMPLE_MIN_OPSET = 16
LINEAR_SPELLING_MIN_OPSET = 20  # GridSample mode "bilinear" became "linear" at opset 20


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    default_opset: int
    max_opset: int = 21
    is_tensorrt: bool = False
    has_grid_sample_layer: bool = True
    parses_layer_norm: bool = True
    parses_mod: bool = True  # TensorRT before 8.5 has no Mod (end-to-end heads take class ids as index % classes)


TARGETS = {
    t.name: t
    for t in (
        Target("ort", "ONNX Runtime (CPU, CUDA, other execution providers)", default_opset=17),
        Target("trt", "TensorRT 10.x / 11.x (desktop, JetPack 6.1+ and 7)", default_opset=17, max_opset=21, is_tensorrt=True),
        Target("trt8.6", "TensorRT 8.6 (JetPack 6.0)", default_opset=17, max_opset=17, is_tensorrt=True),
        Target("trt8.5", "TensorRT 8.5 (JetPack 5.1)", default_opset=16, max_opset=17, is_tensorrt=True, parses_layer_norm=False),
        Target("trt8.4", "TensorRT 8.4 (JetPack 5.0.2)", default_opset=13, max_opset=15, is_tensorrt=True,
               has_grid_sample_layer=False, parses_layer_norm=False, parses_mod=False),
        Target("trt8.2", "TensorRT 8.0-8.2 (JetPack 4.6.x: Nano, TX2, Xavier)", default_opset=13, max_opset=13, is_tensorrt=True,
               has_grid_sample_layer=False, parses_layer_norm=False, parses_mod=False),
        Target("trt-rtx", "TensorRT for RTX", default_opset=17, max_opset=21, is_tensorrt=True),
    )
}


@dataclass
class ExportPlan:
    """What an export will write, with the reason for each choice that was not given by the user."""

    target: Target
    opset: int
    grid_sample: str
    decompose_layer_norm: bool
    decompose_mod: bool
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def plan_export(target: str = "ort", opset: int | None = None, grid_sample: str = "auto") -> ExportPlan:
    """Resolve the opset, the GridSample form and the LayerNormalization handling for `target`."""
    if target not in TARGETS:
        raise ConfigError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)}")
    if grid_sample not in GRID_SAMPLE_FORMS:
        raise ConfigError(f"unknown grid-sample form {grid_sample!r}; choose one of {', '.join(GRID_SAMPLE_FORMS)}")
    t = TARGETS[target]
    reasons, warnings = [], []
    if opset is None:
        opset = t.default_opset
        reasons.append(f"opset {opset}: the default for {t.description}")
    elif opset not in SUPPORTED_OPSETS:
        raise ConfigError(f"opset {opset} is not supported; choose {SUPPORTED_OPSETS.start}-{SUPPORTED_OPSETS.stop - 1}")
    elif opset > t.max_opset:
        warnings.append(f"opset {opset} is above what {t.description} parses ({t.max_opset} and below)")

    if grid_sample == "auto":
        grid_sample, why = _auto_grid_sample(t, opset)
        reasons.append(f"grid-sample {grid_sample}: {why}")
    elif grid_sample == "native":
        if opset < NATIVE_GRID_SAMPLE_MIN_OPSET:
            raise ConfigError(
                f"--grid-sample native needs opset {NATIVE_GRID_SAMPLE_MIN_OPSET} or higher (got {opset}); "
                "use --grid-sample gather, which is valid at every opset from 11"
            )
        if not t.has_grid_sample_layer:
            warnings.append(f"{t.description} has no GridSample layer: use --grid-sample gather or plugin")
        if t.is_tensorrt and opset >= LINEAR_SPELLING_MIN_OPSET:
            warnings.append(
                f"TensorRT parses opset-{opset} GridSample(mode='linear') as nearest (TensorRT issue 4646): "
                "use opset 16-19, --grid-sample gather or plugin"
            )

    decompose = not t.parses_layer_norm and opset >= 17
    if decompose:
        reasons.append(f"LayerNormalization decomposed: {t.description} cannot parse the opset-17 op")
    return ExportPlan(t, opset, grid_sample, decompose, not t.parses_mod, reasons, warnings)


def _auto_grid_sample(t: Target, opset: int) -> tuple[str, str]:
    if not t.has_grid_sample_layer:
        return "gather", f"{t.description} has no GridSample layer (plugin is the other option)"
    if opset < NATIVE_GRID_SAMPLE_MIN_OPSET:
        return "gather", f"GridSample is an ONNX op only from opset {NATIVE_GRID_SAMPLE_MIN_OPSET}"
    if t.is_tensorrt and opset >= LINEAR_SPELLING_MIN_OPSET:
        return "gather", f"TensorRT parses opset-{opset} GridSample(mode='linear') as nearest (TensorRT issue 4646)"
    return "native", f"{t.description} runs ONNX GridSample"
