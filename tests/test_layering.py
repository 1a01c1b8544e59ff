"""The import layering of pyproject.toml holds, and a wrong import breaks it (so the check can fail)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
pytestmark = pytest.mark.skipif(not LINT_IMPORTS.is_file(), reason="import-linter is not installed (pip install '.[dev]')")


def lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, capture_output=True, text=True,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})


def copy_of_the_package(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "dattn", tmp_path / "dattn", ignore=shutil.ignore_patterns("__pycache__", "trt_gridsample"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    return tmp_path


def test_the_layers_hold(tmp_path):
    result = lint(copy_of_the_package(tmp_path))
    assert result.returncode == 0, result.stdout[-3000:]
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize("module, wrong_import, broken", [
    ("dattn/runtime/preprocess.py", "import dattn.exporting.api", "Layers"),
    ("dattn/nn/dattention.py", "import dattn.ultralytics.load", "Layers"),
    ("dattn/runtime/postprocess.py", "import torch", "without torch"),
])
def test_a_wrong_import_breaks_the_contract(tmp_path, module, wrong_import, broken):
    root = copy_of_the_package(tmp_path)
    path = root / module
    path.write_text(path.read_text() + f"\n{wrong_import}\n")
    result = lint(root)
    assert result.returncode != 0, result.stdout[-3000:]
    assert any(broken in line and line.endswith("BROKEN") for line in result.stdout.splitlines()), result.stdout[-3000:]


def test_the_runtime_runs_without_loading_torch_ultralytics_or_the_exporter(recipe_weights, export_once, tmp_path):
    """The promise holds at run time, not only statically: an installed dattn's runtime loads none of them."""
    from conftest import run_python
    from runtime_models import sample_images

    path, _ = export_once(recipe_weights, "runtime-only.onnx", imgsz=160, verify=False)
    code = (
        "import sys\n"
        "from dattn.runtime import Detector\n"
        f"found = Detector({str(path)!r}).predict({str(sample_images()[0])!r})\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'ultralytics')\n"
        "          or m in ('dattn.exporting', 'dattn.ultralytics', 'dattn.nn')\n"
        "          or m.startswith(('dattn.exporting.', 'dattn.ultralytics.', 'dattn.nn.'))]\n"
        "print(len(found.boxes), sorted(loaded))\n"
    )
    boxes, loaded = run_python(code, cwd=tmp_path).stdout.split(" ", 1)  # a folder outside the checkout
    assert int(boxes) > 0 and loaded.strip() == "[]", loaded
