import os
import tempfile

# Keep ultralytics off the network and out of the user's settings before anything imports it.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="dattn-yolo-config-"))

import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent


def run_python(code_or_args, cwd=None, check=True):
    """Run Python in a fresh process (nothing registered, nothing pasted); returns the CompletedProcess."""
    args = ["-c", code_or_args] if isinstance(code_or_args, str) else list(code_or_args)
    result = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, env={**os.environ})
    if check and result.returncode != 0:
        raise AssertionError(f"python {' '.join(args)[:200]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def _trained(tmp_path_factory, kind):
    out = tmp_path_factory.mktemp(f"{kind}-checkpoint")
    run_python([str(TESTS / "checkpoints.py"), kind, str(out)])
    return out


@pytest.fixture(scope="session")
def recipe_run(tmp_path_factory):
    """A folder with best.pt trained with the recipe's classes pasted into ultralytics, and reference.pt."""
    return _trained(tmp_path_factory, "recipe")


@pytest.fixture(scope="session")
def recipe_weights(recipe_run, tmp_path_factory):
    """A copy of the recipe-trained best.pt alone in its folder, for exports that write next to it."""
    weights = tmp_path_factory.mktemp("recipe-weights") / "best.pt"
    weights.write_bytes((recipe_run / "best.pt").read_bytes())
    return weights


@pytest.fixture(scope="session")
def dattn_run(tmp_path_factory):
    """A folder with best.pt trained with dattn's class, and reference.pt."""
    return _trained(tmp_path_factory, "dattn")


def pytest_report_header(config):
    import ultralytics

    return f"ultralytics {ultralytics.__version__} from {Path(ultralytics.__file__).parent}"


@pytest.fixture(scope="session", autouse=True)
def _ultralytics_version_as_expected():
    """`make test` runs some files again against ultralytics 8.3; make sure that is what they got."""
    import ultralytics

    expected = os.environ.get("DATTN_EXPECT_ULTRALYTICS")
    assert not expected or ultralytics.__version__.startswith(expected), (ultralytics.__version__, expected)
