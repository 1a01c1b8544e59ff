import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("YOLO_OFFLINE", "1")  # keep ultralytics off the network
TESTS = Path(__file__).parent
REPO = TESTS.parent
# Set to a folder to keep the trained checkpoints between test runs (development only; CI trains afresh).
CACHE_ENV = "DATTN_TEST_CHECKPOINTS"


@pytest.fixture(scope="session", autouse=True)
def _ultralytics_settings_in_a_temporary_folder(tmp_path_factory):
    """Ultralytics writes its settings where YOLO_CONFIG_DIR says when it is first imported: keep them out of $HOME."""
    assert "ultralytics" not in sys.modules, "a test module imported ultralytics at collection time; import it inside the test"
    os.environ["YOLO_CONFIG_DIR"] = str(tmp_path_factory.mktemp("yolo-config"))


# How the exporters name the GridSample node (and the gather rewrite names the nodes it makes of it):
# torchscript '/model.9/attn/GridSample', dynamo 'node_grid_sampler'.
SAMPLER_NAME = re.compile("GridSample|grid_sampler")


def run_python(code_or_args, cwd=None, check=True, env=None):
    """Run Python in a fresh process (nothing registered, nothing pasted); returns the CompletedProcess."""
    args = ["-c", code_or_args] if isinstance(code_or_args, str) else list(code_or_args)
    result = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if check and result.returncode != 0:
        raise AssertionError(f"python {' '.join(args)[:200]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def _fixture_key(kind: str) -> str:
    """What a trained checkpoint depends on: its kind's settings and the training code (tests/checkpoints.py)."""
    from checkpoints import KINDS, SOURCES, installed_ultralytics

    digest = hashlib.sha256(repr(vars(KINDS[kind])).encode())
    digest.update(installed_ultralytics().encode())
    for path in SOURCES:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _trained(tmp_path_factory, kind):
    """The folder of a trained fixture: from $DATTN_TEST_CHECKPOINTS when it holds this version, else trained now."""
    from checkpoints import training_environment

    cache = os.environ.get(CACHE_ENV)
    out = Path(cache) / f"{kind}-{_fixture_key(kind)}" if cache else tmp_path_factory.mktemp(f"{kind}-checkpoint")
    if not (out / "reference.pt").is_file():
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        run_python([str(TESTS / "checkpoints.py"), kind, str(out)], env=training_environment())
    return out


def _alone(tmp_path_factory, run: Path, name: str) -> Path:
    """A copy of a fixture's best.pt alone in a folder, for exports that write next to their weights."""
    weights = tmp_path_factory.mktemp(f"{name}-weights") / "best.pt"
    weights.write_bytes((run / "best.pt").read_bytes())
    return weights


@pytest.fixture(scope="session")
def recipe_run(tmp_path_factory):
    """A detector trained with the recipe's classes pasted into ultralytics, as users have it.

    The folder holds best.pt (80 epochs on generated shapes: it detects them), reference.pt (a fixed input
    and the recipe model's outputs on it) and data/ (the dataset, data/data.yaml, with a validation split).
    """
    return _trained(tmp_path_factory, "recipe")


@pytest.fixture(scope="session")
def recipe_weights(recipe_run, tmp_path_factory):
    """A copy of the recipe-trained best.pt alone in its folder, for exports that write next to it."""
    return _alone(tmp_path_factory, recipe_run, "recipe")


@pytest.fixture(scope="session")
def recipe_data(recipe_run):
    """The data yaml of the dataset the recipe detector learnt (train and val splits of generated shapes)."""
    return recipe_run / "data" / "data.yaml"


@pytest.fixture(scope="session")
def yolo26_run(tmp_path_factory):
    """A recipe-style YOLO26-dattn (the recipe's classes pasted) that detects, saved with its NMS-free branch on;
    laid out as recipe_run. Ultralytics 8.4 only: 8.3 has no YOLO26."""
    import ultralytics

    if ultralytics.__version__.startswith("8.3"):
        pytest.skip("ultralytics 8.3 has no YOLO26")
    return _trained(tmp_path_factory, "yolo26")


@pytest.fixture(scope="session")
def rtdetr_run(tmp_path_factory):
    """A reduced RT-DETR with a DAttention block (tests/cfg/rtdetr-tiny-dattn.yaml) that detects; laid out as
    recipe_run."""
    return _trained(tmp_path_factory, "rtdetr")


@pytest.fixture(scope="session")
def dattn_run(tmp_path_factory):
    """A folder with best.pt briefly trained with dattn's class (BatchNorm statistics calibrated), and reference.pt."""
    return _trained(tmp_path_factory, "dattn")


def pytest_report_header(config):
    return f"trained checkpoints cached in {os.environ[CACHE_ENV]}" if os.environ.get(CACHE_ENV) else None


@pytest.fixture(scope="session", autouse=True)
def _ultralytics_version_as_expected(_ultralytics_settings_in_a_temporary_folder):
    """`make test` runs some files again against ultralytics 8.3; make sure that is what they got."""
    import ultralytics

    expected = os.environ.get("DATTN_EXPECT_ULTRALYTICS")
    assert not expected or ultralytics.__version__.startswith(expected), (ultralytics.__version__, expected)


@pytest.fixture(scope="session")
def export_once(tmp_path_factory):
    """export_once(weights, name, **options) -> (path, the export's report): dattn.export run once per session for
    each name (test files share exports this way); the path is a file or folder called `name` in a session folder."""
    import contextlib
    import io

    import dattn

    folder, done = tmp_path_factory.mktemp("exports"), {}

    def export(weights, name, **options):
        if name not in done:
            report = io.StringIO()
            with contextlib.redirect_stderr(report):
                path = dattn.export(weights, output=str(folder / name), **options)
            done[name] = (Path(path), report.getvalue())
        return done[name]

    return export
