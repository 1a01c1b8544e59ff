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


@pytest.fixture(scope="session")
def int8_export(export_once, request):
    """int8_export(kind, target) -> (path, report) of the fixture's INT8 export for `target` ("trt" or "ort"), made
    as a user makes it (verified, gated, rescued where needed) at the fixture's own size, or the VerificationError
    that refused it; shared by the test files."""
    from checkpoints import KINDS

    from dattn.errors import VerificationError

    refused = {}

    def export(kind, target):
        name = f"{kind}-int8-{target}.onnx"
        if name not in refused:
            run = request.getfixturevalue(f"{kind}_run")
            try:
                return export_once(run / "best.pt", name, imgsz=KINDS[kind].imgsz, int8=True, target=target,
                                   data=str(run / "data" / "data.yaml"))
            except VerificationError as error:
                refused[name] = error
        return refused[name]

    return export


# The fast tier (`make test-fast`, pytest -m fast): one representative of every module and of every matrix, for the
# edit loop, stated here in one place. Entries are test-id prefixes ("file.py::test" or with a parameter id).
FAST = (
    "test_bundle.py::test_files_present", "test_bundle.py::test_shipped_python_parses_as_python_3_6",
    "test_checkpoint_trust.py::test_a_payload_is_refused_before_unpickling_and_does_not_run",
    "test_cli_failures.py::test_bad_options_are_one_line", "test_cli_failures.py::test_inputs_are_checked_before_outputs",
    "test_dattention.py::test_yaml_call_form_gives_eight_heads", "test_dattention.py::test_onnx_export_of_the_block",
    "test_engine.py::test_damaged_engine_header_is_not_taken_for_a_raw_plan",
    "test_export.py::test_every_opset_and_form_agrees_with_pytorch[torchscript-opset17-native]",
    "test_export.py::test_every_opset_and_form_agrees_with_pytorch[torchscript-opset13-gather]",
    "test_export.py::test_bad_requests_fail_clearly_and_write_nothing",
    "test_export_tensorrt_rtx.py::test_trt85_at_opset17_has_no_layer_normalization[torchscript]",
    "test_files.py::",
    "test_heads.py::test_the_export_has_the_one_output_of_the_head[yolo26-17-native]",
    "test_heads.py::test_detector_gives_ultralytics_detections[rtdetr-17]",
    "test_layering.py::test_the_layers_hold", "test_layering.py::test_the_runtime_runs_without",
    "test_pass_dtype_check.py::", "test_pass_einsum.py::test_static[b c m, b c n -> b m n-17]", "test_pass_grid_sample_gather.py::test_agrees_with_torch",
    "test_pass_layer_norm.py::test_agrees_with_torch", "test_pass_mod.py::",
    "test_pass_opset_downgrade.py::test_every_rewrite_agrees_with_the_opset18_graph_in_onnx_runtime",
    "test_plugin_contract.py::", "test_plugin_library.py::test_which_builds_fit_which_tensorrt", "test_plugin_license.py::",
    "test_precision.py::test_bad_precision_and_engine_requests_fail_clearly_and_write_nothing",
    "test_predict.py::test_folder_run_carries_on_past_bad_files", "test_predict.py::test_run_folders_are_fresh_unless_exist_ok",
    "test_request.py::",
    "test_runtime_onnxruntime.py::test_detections_match_ultralytics[static-160]",
    "test_runtime_onnxruntime.py::test_an_onnx_that_is_not_a_detector_is_refused_in_one_line",
    "test_runtime_processing.py::test_letterbox_is_ultralytics_letterbox",
    "test_runtime_processing.py::test_decode_is_ultralytics_nms_on_the_detector",
    "test_runtime_tensorrt.py::test_api_is_chosen_by_what_the_engine_has",
    "test_triton_repository.py::test_dynamic_graph_gives_a_batching_repository",
    "test_triton_repository.py::test_an_export_replaces_its_own_folders_and_nothing_else_in_a_shared_repository",
    "test_trt_plugin_onnx_graph.py::test_plugin_graph_in_onnxruntime_matches_torch",
    "test_ultralytics_integration.py::test_recipe_checkpoint_loads_and_matches_the_recipe_model[recipe]",
    "test_ultralytics_integration.py::test_bad_weights_get_a_one_line_error_naming_the_file",
    "test_verify.py::",
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        test_id = item.nodeid.rpartition("/")[2]
        if test_id.startswith(FAST):
            item.add_marker(pytest.mark.fast)
