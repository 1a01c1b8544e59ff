"""dattn inside a stock ultralytics: yaml building, training, loading recipe and dattn checkpoints, bad input."""

import sys
from pathlib import Path

import pytest
import torch

import dattn
from conftest import run_python
from dattn import CheckpointError


pytestmark = pytest.mark.ultralytics_83


def asset(name: str) -> Path:
    """One of the sample images ultralytics ships."""
    import ultralytics

    return Path(ultralytics.__file__).parent / "assets" / name


@pytest.mark.parametrize("cfg, block_index, channels", [
    ("yolov8n-dattn.yaml", 10, 256), ("yolov8n-dattn-p4.yaml", 7, 128), ("yolo11n-dattn.yaml", 10, 256), ("yolov8s-dattn.yaml", 10, 512),
])
def test_packaged_yaml_builds_and_runs(cfg, block_index, channels):
    from ultralytics import YOLO

    model = YOLO(cfg).model.eval()
    block = model.model[block_index]
    assert type(block) is dattn.DAttention and block.nc == channels
    with torch.no_grad():
        y = model(torch.rand(1, 3, 128, 128))[0]
    assert y.shape == (1, 84, 16 * 16 + 8 * 8 + 4 * 4)


@pytest.fixture(params=["recipe", "yolo26"])
def recipe_style_run(request):
    """The recipe-trained checkpoints: yolov8n-dattn and a YOLO26-dattn saved with its NMS-free branch on."""
    return request.getfixturevalue(f"{request.param}_run")


def test_stock_ultralytics_cannot_load_the_recipe_checkpoint(recipe_style_run):
    # The fixture is what users hold: without dattn, ultralytics fails exactly as they report.
    result = run_python(f"from ultralytics import YOLO; YOLO({str(recipe_style_run / 'best.pt')!r})", check=False)
    assert result.returncode != 0
    assert "Can't get attribute 'DAttention' on <module 'ultralytics.nn.modules.conv'" in result.stderr


# Whole-model outputs computed in another process may differ in summation order (thread count), hence 1e-5.
MODEL_RTOL = 1e-5


def test_recipe_checkpoint_loads_and_matches_the_recipe_model(recipe_style_run):
    reference = torch.load(recipe_style_run / "reference.pt")
    model = dattn.load(recipe_style_run / "best.pt").model
    assert any(type(m) is dattn.DAttention for m in model.modules())
    with torch.no_grad():
        y = model(reference["input"])[0]
    expected = reference["output"]
    if expected.shape[-1] == 6:  # an NMS-free top-k: its confident rows (rows of near-equal low scores may swap)
        confident = expected[..., 4] > 0.25
        assert confident.sum() > 0 and torch.equal(confident, y[..., 4] > 0.25)
        y, expected = y[confident], expected[confident]
    assert (y - expected).abs().max().item() <= MODEL_RTOL * expected.abs().max().item()


def test_trained_block_matches_recipe_arithmetic_on_real_features(recipe_run):
    from recipe import recipe_forward

    model = dattn.load(recipe_run / "best.pt").model.eval()
    block = next(m for m in model.modules() if type(m) is dattn.DAttention)
    seen = {}
    hook = block.register_forward_hook(lambda m, i, o: seen.update(x=i[0], y=o))
    with torch.no_grad():
        model(torch.load(recipe_run / "reference.pt")["input"])
        hook.remove()
        recipe_y = recipe_forward(block, seen["x"])
    assert seen["x"].abs().max() > 1.0, "features reaching the block are too small to exercise it"
    assert (recipe_y - seen["y"]).abs().max().item() <= 1e-6 * seen["y"].abs().max().item()


def test_recipe_checkpoint_loads_with_plain_yolo_in_a_fresh_process(recipe_run, tmp_path):
    code = (
        "import dattn, torch; from ultralytics import YOLO\n"
        f"model = YOLO({str(recipe_run / 'best.pt')!r})\n"
        f"result = model.predict({str(asset('bus.jpg'))!r}, imgsz=128, conf=0.0001, verbose=False)[0]\n"
        "assert len(result.boxes) > 0, 'no boxes'\n"
        "print('boxes', len(result.boxes))\n"
    )
    assert "boxes" in run_python(code, cwd=tmp_path).stdout


@pytest.mark.parametrize("module", ["ultralytics.nn.modules.attention_blocks", "__main__"])
def test_recipe_classes_pasted_elsewhere_are_found_from_the_checkpoint(recipe_run, tmp_path, module):
    # Re-pickle the recipe model with its classes under a module that does not exist in ultralytics, or in a script.
    code = (
        "import sys, torch, types; sys.path.insert(0, %r)\n"
        "import recipe\n"
        "with recipe.recipe_classes_pasted():\n"
        "    ckpt = torch.load(%r, weights_only=False)\n"
        "mod = sys.modules.setdefault(%r, types.ModuleType(%r))\n"
        "for cls in (recipe.RecipeDAttention, recipe.RecipeLayerNormProxy):\n"
        "    cls.__module__ = mod.__name__; setattr(mod, cls.__qualname__, cls)\n"
        "torch.save(ckpt, %r)\n"
    ) % (str(Path(__file__).parent), str(recipe_run / "best.pt"), module, module, str(tmp_path / "moved.pt"))
    run_python(code)
    names = torch.serialization.get_unsafe_globals_in_checkpoint(str(tmp_path / "moved.pt"))
    assert f"{module}.DAttention" in names
    reference = torch.load(recipe_run / "reference.pt")
    for trust in (False, True):
        model = dattn.load(tmp_path / "moved.pt", trust=trust).model
        with torch.no_grad():
            y = model(reference["input"])[0]
        assert (y - reference["output"]).abs().max().item() <= MODEL_RTOL * reference["output"].abs().max().item()
    # Mapped inside the unpickler: no stand-in module, nothing added to a module.
    assert module == "__main__" or module not in sys.modules
    assert not hasattr(sys.modules["__main__"], "DAttention")


def test_dattn_checkpoint_reloads_and_predicts_in_a_fresh_process(dattn_run, tmp_path):
    code = (
        "import dattn, torch\n"
        f"model = dattn.load({str(dattn_run / 'best.pt')!r})\n"
        f"reference = torch.load({str(dattn_run / 'reference.pt')!r})\n"
        "with torch.no_grad(): y = model.model(reference['input'])[0]\n"
        f"assert (y - reference['output']).abs().max() <= {MODEL_RTOL} * reference['output'].abs().max()\n"
        f"print('boxes', len(model.predict({str(asset('zidane.jpg'))!r}, imgsz=128, conf=0.0001, verbose=False)[0].boxes))\n"
    )
    assert "boxes" in run_python(code, cwd=tmp_path).stdout


def test_dynamic_trace_of_a_trained_model_matches_eager(dattn_run):
    model = dattn.load(dattn_run / "best.pt").model.eval()
    head = model.model[-1]
    head.dynamic, head.export = True, True  # anchors per input shape; one output tensor, as ultralytics exports
    traced = torch.jit.trace(model, torch.rand(1, 3, 128, 128), check_trace=False)
    x = torch.rand(2, 3, 96, 160, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        eager, replay = model(x), traced(x)
    assert replay.shape == eager.shape
    assert (replay - eager).abs().max().item() <= 1e-5 * eager.abs().max().item()


@pytest.mark.parametrize("cfg", ["yolov8n-dattn.yaml", "yolo26n-dattn.yaml"])
def test_dattn_yolo_cli_trains_with_the_block_registered(tmp_path, cfg):
    import ultralytics

    from dattn.ultralytics.synthetic import make_dataset

    if cfg.startswith("yolo26") and ultralytics.__version__.startswith("8.3"):
        pytest.skip("ultralytics 8.3 has no YOLO26")
    data = make_dataset(tmp_path / "data", n_train=8, n_val=2)
    result = run_python(
        ["-m", "dattn.cli", "yolo", "train", f"model={cfg}", f"data={data}", "epochs=1", "imgsz=64",
         "batch=4", "workers=0", "device=cpu", "plots=False", f"project={tmp_path / 'runs'}", "name=cli"],
        cwd=tmp_path,
    )
    best = tmp_path / "runs" / "cli" / "weights" / "best.pt"
    assert best.is_file(), result.stdout[-2000:]
    assert "dattn.nn.dattention.DAttention" in torch.serialization.get_unsafe_globals_in_checkpoint(str(best))


def test_plain_yolo_checkpoint_just_works(tmp_path):
    from ultralytics import YOLO

    path = tmp_path / "plain.pt"
    YOLO("yolov8n.yaml").save(str(path))
    model = dattn.load(path)
    assert not any(type(m) is dattn.DAttention for m in model.model.modules())
    with torch.no_grad():
        assert model.model.eval()(torch.rand(1, 3, 64, 64))[0].shape[1] == 84


# A small RT-DETR (rtdetr-l.yaml builds a 32M-parameter model): the same decoder classes at a size that builds fast.
TINY_RTDETR = """\
nc: 2
backbone:
  - [-1, 1, Conv, [16, 3, 2]]
  - [-1, 1, Conv, [32, 3, 2]]
  - [-1, 1, Conv, [32, 3, 2]]
  - [-1, 1, Conv, [32, 3, 2]]
  - [-1, 1, Conv, [32, 3, 2]]
head:
  - [-1, 1, AIFI, [64, 2]]
  - [[2, 3, 5], 1, RTDETRDecoder, [nc, 32, 20, 2, 2, 1, 64]]
"""


def _assert_same_model(restricted, trusted):
    """Same classes, attributes and weights; fused layers' forward bound to the layer itself."""
    pairs = list(zip(restricted.modules(), trusted.modules(), strict=True))
    for a, b in pairs:
        assert type(a) is type(b) and vars(a).keys() == vars(b).keys()
        if "forward" in vars(a):  # a fused layer: its bound forward_fuse was pickled through getattr
            assert a.forward.__self__ is a and a.forward.__func__ is b.forward.__func__
    a, b = restricted.state_dict(), trusted.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("cfg, variant", [
    ("yolov8n.yaml", None), ("yolov8n.yaml", "fused"), ("yolov8n-seg.yaml", None), ("yolo11n.yaml", None),
    ("yolo11n-pose.yaml", None), ("yolo11n-obb.yaml", "fused"), ("yolo11n-cls.yaml", "transforms"), ("yolov10n.yaml", None),
    ("yolo26n.yaml", None), ("yolo26n-seg.yaml", None), ("rtdetr-tiny.yaml", None),
])
def test_every_family_loads_without_running_code_from_the_file(tmp_path, cfg, variant):
    # dattn.load's default, restricted, gives the model the full unpickler gives.
    import ultralytics
    from ultralytics import RTDETR, YOLO

    if cfg.startswith("yolo26") and ultralytics.__version__.startswith("8.3"):
        pytest.skip("ultralytics 8.3 has no YOLO26")
    if cfg.startswith("rtdetr"):
        (tmp_path / cfg).write_text(TINY_RTDETR)
        model = RTDETR(str(tmp_path / cfg))
    else:
        model = YOLO(cfg)
    if variant == "fused":  # what a model saved after predict() holds
        model.fuse()
    if variant == "transforms":  # what ultralytics' classification trainer leaves on the model it saves
        from ultralytics.data.augment import classify_transforms

        model.model.transforms = classify_transforms(64)
    path = tmp_path / "weights.pt"
    model.save(str(path))
    restricted, trusted = dattn.load(path), dattn.load(path, trust=True)
    assert type(restricted.model) is type(model.model)
    _assert_same_model(restricted.model, trusted.model)


@pytest.fixture(scope="module")
def trained_weights(tmp_path_factory):
    """The weights folder of a real 1-epoch training (in its own process: training changes torch's global settings).

    best.pt and last.pt are stripped of the optimizer; epoch0.pt (save_period=1) keeps it, the training criterion
    (8.3) and the args given as Path objects, as a checkpoint saved mid-training does.
    """
    folder = tmp_path_factory.mktemp("trained")
    run_python(
        "from pathlib import Path\n"
        "import dattn\n"
        "from ultralytics import YOLO\n"
        "from dattn.ultralytics.synthetic import make_dataset\n"
        f"folder = Path({str(folder)!r})\n"
        "data = make_dataset(folder / 'data', n_train=4, n_val=2, imgsz=64)\n"
        "YOLO('yolov8n.yaml').train(data=data, epochs=1, imgsz=64, batch=4, workers=0, device='cpu', amp=False, val=False,\n"
        "                           plots=False, project=folder, name='run', exist_ok=True, save_period=1, seed=0, verbose=False)\n",
        cwd=folder,
    )
    return folder / "run" / "weights"


@pytest.mark.parametrize("name", ["best.pt", "last.pt", "epoch0.pt"])
def test_trainer_checkpoints_load_without_running_code_from_the_file(trained_weights, name):
    restricted, trusted = dattn.load(trained_weights / name), dattn.load(trained_weights / name, trust=True)
    _assert_same_model(restricted.model, trusted.model)
    assert restricted.ckpt.keys() == trusted.ckpt.keys()
    assert restricted.ckpt["train_args"] == trusted.ckpt["train_args"]
    assert str(restricted.ckpt["train_args"]["data"]).endswith("data.yaml")
    if name == "epoch0.pt":
        assert restricted.ckpt["optimizer"]["param_groups"] == trusted.ckpt["optimizer"]["param_groups"]


def _listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("make_bad, message", [
    (lambda d, good: d / "missing.pt", "no such file"),
    (lambda d, good: (d / "notes.pt").write_text("not weights") and d / "notes.pt", "not a PyTorch checkpoint"),
    (lambda d, good: (d / "cut.pt").write_bytes(good.read_bytes()[: good.stat().st_size // 2]) and d / "cut.pt", "truncated or corrupted"),
])
def test_bad_weights_get_a_one_line_error_naming_the_file(tmp_path, dattn_run, make_bad, message):
    bad = make_bad(tmp_path, dattn_run / "best.pt")
    before = _listing(tmp_path)
    with pytest.raises(CheckpointError) as error:
        dattn.load(bad)
    text = str(error.value)
    assert message in text and str(bad) in text and "\n" not in text
    assert _listing(tmp_path) == before


def test_unmappable_pasted_class_gets_a_one_line_error(tmp_path):
    code = (
        "import torch, torch.nn as nn, ultralytics.nn.modules.conv as conv\n"
        "class FancyAttention(nn.Module): pass\n"
        "FancyAttention.__module__ = 'ultralytics.nn.modules.conv'; conv.FancyAttention = FancyAttention\n"
        f"torch.save({{'model': nn.Sequential(FancyAttention())}}, {str(tmp_path / 'fancy.pt')!r})\n"
    )
    run_python(code)
    before = _listing(tmp_path)
    with pytest.raises(CheckpointError, match="ultralytics.nn.modules.conv.FancyAttention") as error:
        dattn.load(tmp_path / "fancy.pt")
    assert str(tmp_path / "fancy.pt") in str(error.value) and "\n" not in str(error.value)
    assert _listing(tmp_path) == before


def test_the_recipe_detector_has_learnt_the_shapes(recipe_run):
    # The comparisons elsewhere mean something only on a model that detects: mAP50 >= 0.5 on its validation split.
    from dattn.exporting.accuracy import validation_map

    map50_95, map50 = validation_map(recipe_run / "best.pt", recipe_run / "data" / "data.yaml", 160, batch=8)
    assert map50 >= 50, (map50_95, map50)
