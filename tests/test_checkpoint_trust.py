"""Untrusted checkpoints run no code: what a file may ask of the unpickler, and what trusting it changes.

The files are real checkpoints (the recipe-trained detector, YOLO models built from yamls) with one object added
whose unpickling would leave a marker file behind, so whether anything ran is read from the disk.
"""

import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch

import dattn
from conftest import run_python
from dattn import CheckpointError
from dattn.ultralytics.checkpoint import check_checkpoint
from recipe import recipe_classes_pasted

pytestmark = pytest.mark.ultralytics_83


class _Call:
    """Unpickles as `func(*args)`: what a malicious file asks the unpickler to do."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _touch(marker: Path) -> _Call:
    """os.system("touch MARKER"): harmless, and observable."""
    return _Call(os.system, f"touch {marker}")


def _recipe_checkpoint_with(recipe_run, path: Path, extra) -> Path:
    """The recipe-trained best.pt, its recipe classes pickled where the recipe puts them, with `extra` added."""
    with recipe_classes_pasted():
        checkpoint = torch.load(recipe_run / "best.pt", weights_only=False)
        checkpoint["extra"] = extra
        torch.save(checkpoint, path)
    return path


@pytest.fixture(scope="module")
def evil(recipe_run, tmp_path_factory):
    """The recipe checkpoint with an os.system payload, and the marker file the payload would create."""
    folder = tmp_path_factory.mktemp("evil")
    marker = folder / "payload-ran"
    return _recipe_checkpoint_with(recipe_run, folder / "evil.pt", _touch(marker)), marker


def test_a_payload_is_refused_before_unpickling_and_does_not_run(evil, recipe_run):
    weights, marker = evil
    dattn.load(recipe_run / "best.pt")  # everything a load imports is imported now
    modules_before = set(sys.modules)
    with pytest.raises(CheckpointError) as error:
        dattn.load(weights)
    text = str(error.value)
    assert "posix.system" in text and str(weights) in text and "--trust-weights" in text and "\n" not in text
    assert not marker.exists()
    assert set(sys.modules) == modules_before
    with pytest.raises(CheckpointError, match="posix.system"):
        check_checkpoint(weights)  # what the export's up-front checks call


def test_the_cli_refuses_a_payload_with_exit_2_and_one_line(evil, tmp_path):
    weights, marker = evil
    result = run_python(["-m", "dattn.cli", "export", "--weights", str(weights), "--imgsz", "160",
                         "--output", str(tmp_path / "evil.onnx")], check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "posix.system" in result.stderr.strip().splitlines()[-1]
    assert not marker.exists() and not list(tmp_path.iterdir())


def test_the_cli_refuses_before_loading_and_trust_weights_opts_in(recipe_run, tmp_path):
    marker = tmp_path / "payload-ran"
    weights = _recipe_checkpoint_with(recipe_run, tmp_path / "mine.pt", _touch(marker))
    refused = run_python(["-m", "dattn.cli", "export", "--weights", str(weights), "--output", str(tmp_path / "a.onnx")],
                         check=False)
    assert refused.returncode == 2 and "loading" not in refused.stderr  # refused by the up-front check
    trusted = run_python(["-m", "dattn.cli", "export", "--weights", str(weights), "--trust-weights", "--imgsz", "160",
                          "--no-verify", "--output", str(tmp_path / "b.onnx")])
    assert marker.exists() and (tmp_path / "b.onnx").is_file(), trusted.stderr[-2000:]


def test_trusting_the_file_runs_what_it_contains(recipe_run, tmp_path):
    marker = tmp_path / "payload-ran"
    weights = _recipe_checkpoint_with(recipe_run, tmp_path / "trusted.pt", _touch(marker))
    run_python(f"import dattn; dattn.load({str(weights)!r}, trust=True)")
    assert marker.exists()


def test_an_allowed_class_cannot_be_constructed_from_the_file(recipe_run, tmp_path):
    # Allowing DetectionModel so that its objects can be rebuilt must not let the file call DetectionModel(cfg):
    # its constructor evals the cfg's activation string.
    from ultralytics.nn.tasks import DetectionModel

    marker = tmp_path / "constructor-ran"
    cfg = {"nc": 1, "activation": f"__import__('pathlib').Path({str(marker)!r}).touch() or nn.SiLU()",
           "backbone": [[-1, 1, "Conv", [16, 3, 2]]], "head": [[[0], 1, "Detect", ["nc"]]]}
    weights = _recipe_checkpoint_with(recipe_run, tmp_path / "construct.pt", _Call(DetectionModel, cfg))
    with pytest.raises(CheckpointError, match=r"calls ultralytics\.nn\.tasks\.DetectionModel\(\.\.\.\)") as error:
        dattn.load(weights)
    assert "\n" not in str(error.value)
    assert not marker.exists()


def test_getattr_reaches_only_forward_methods(recipe_run, tmp_path):
    # getattr(Detect.forward, "__globals__") would lead from an allowed class to any function of its module.
    from ultralytics.nn.modules.head import Detect

    weights = _recipe_checkpoint_with(recipe_run, tmp_path / "globals.pt", _Call(getattr, Detect.forward, "__globals__"))
    with pytest.raises(CheckpointError, match="__globals__") as error:
        dattn.load(weights)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("name", ["builtins.eval", "subprocess.Popen", "ultralytics.utils.files.increment_path",
                                  "ultralytics.nn.autobackend.AutoBackend"])
def test_functions_and_other_classes_are_refused(recipe_run, tmp_path, name):
    # Functions never pass, nor classes outside the rules (AutoBackend is a torch module that loads any model file).
    import subprocess

    from ultralytics.nn.autobackend import AutoBackend
    from ultralytics.utils.files import increment_path

    marker = tmp_path / "marker"
    extra = {
        "builtins.eval": _Call(eval, f"__import__('pathlib').Path({str(marker)!r}).touch()"),
        "subprocess.Popen": _Call(subprocess.Popen, ["touch", str(marker)]),
        "ultralytics.utils.files.increment_path": _Call(increment_path, marker, False, "", True),  # mkdir
        "ultralytics.nn.autobackend.AutoBackend": AutoBackend,
    }[name]
    weights = _recipe_checkpoint_with(recipe_run, tmp_path / "refused.pt", extra)
    # (torch's scanner spells some modules by their Python 2 names: subprocess.Popen reads commands.Popen.)
    with pytest.raises(CheckpointError, match=rf"references \S*\.{name.rpartition('.')[2]}, ") as error:
        dattn.load(weights)
    assert "--trust-weights" in str(error.value) and "\n" not in str(error.value)
    assert not marker.exists()


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="needs a machine without a tensorrt module")
def test_recipe_classes_under_another_package_register_no_module(recipe_run, tmp_path):
    # The checkpoint's pickle says the recipe classes live in `tensorrt`: no load may make `import tensorrt` succeed.
    weights = tmp_path / "tensorrt_classes.pt"
    run_python(
        "import sys, types, torch; sys.path.insert(0, %r)\n"
        "import recipe\n"
        "with recipe.recipe_classes_pasted():\n"
        "    checkpoint = torch.load(%r, weights_only=False)\n"
        "fake = types.ModuleType('tensorrt'); sys.modules['tensorrt'] = fake\n"
        "for cls in (recipe.RecipeDAttention, recipe.RecipeLayerNormProxy):\n"
        "    cls.__module__ = 'tensorrt'; setattr(fake, cls.__qualname__, cls)\n"
        "torch.save(checkpoint, %r)\n" % (str(Path(__file__).parent), str(recipe_run / "best.pt"), str(weights))
    )
    result = run_python(
        "import sys, dattn\n"
        "for trust in (False, True):\n"
        "    try:\n"
        f"        dattn.load({str(weights)!r}, trust=trust)\n"
        "    except dattn.CheckpointError as e:\n"
        "        print('refused:', e)\n"
        "    assert 'tensorrt' not in sys.modules, trust\n"
        "try:\n"
        "    import tensorrt\n"
        "except ImportError:\n"
        "    print('import tensorrt: ImportError')\n"
    )
    lines = result.stdout.splitlines()
    assert any(line.startswith("refused:") and "tensorrt.DAttention" in line for line in lines), result.stdout
    assert "import tensorrt: ImportError" in lines


def test_numpy_scalars_and_dtypes_load(tmp_path):
    # Older ultralytics wrote metrics as numpy scalars.
    import numpy as np
    from ultralytics import YOLO

    YOLO("yolov8n.yaml").save(str(tmp_path / "plain.pt"))
    checkpoint = torch.load(tmp_path / "plain.pt", weights_only=False)
    checkpoint["train_metrics"] = {"metrics/mAP50(B)": np.float64(0.625), "fitness": np.float32(0.5), "dtype": np.dtype("int16")}
    torch.save(checkpoint, tmp_path / "numpy.pt")
    assert {"numpy.dtype"} <= set(torch.serialization.get_unsafe_globals_in_checkpoint(str(tmp_path / "numpy.pt")))
    restricted, trusted = dattn.load(tmp_path / "numpy.pt"), dattn.load(tmp_path / "numpy.pt", trust=True)
    assert restricted.ckpt["train_metrics"] == trusted.ckpt["train_metrics"] == checkpoint["train_metrics"]


def test_ultralytics_safe_load_makes_plain_yolo_restricted(recipe_run, dattn_run, evil, tmp_path):
    # YOLO(...) outside dattn.load follows ultralytics' policy: the full unpickler, unless ULTRALYTICS_SAFE_LOAD=1.
    import ultralytics.utils

    if not hasattr(ultralytics.utils, "SAFE_LOAD"):
        pytest.skip(f"ultralytics {ultralytics.__version__} has no ULTRALYTICS_SAFE_LOAD")
    weights, marker = evil
    code = (
        "import dattn; from ultralytics import YOLO\n"
        f"print(type(YOLO({str(recipe_run / 'best.pt')!r}).model).__name__, type(YOLO({str(dattn_run / 'best.pt')!r}).model).__name__)\n"
        "for load in (YOLO, lambda path: dattn.load(path, trust=True)):\n"
        f"    try:\n        load({str(weights)!r})\n    except dattn.CheckpointError as e:\n        print('refused:', e)\n"
    )
    result = run_python(code, cwd=tmp_path, env={"ULTRALYTICS_SAFE_LOAD": "1"})
    assert "DetectionModel DetectionModel" in result.stdout
    refusals = [line for line in result.stdout.splitlines() if line.startswith("refused:")]
    assert len(refusals) == 2 and all("posix.system" in line for line in refusals), result.stdout  # trust too
    assert not marker.exists()
    run_python(code, cwd=tmp_path, env={"ULTRALYTICS_SAFE_LOAD": "0"}, check=False)
    assert marker.exists()  # ultralytics' default: whatever the file contains runs
    marker.unlink()
