"""The repository dattn writes, loaded by a real tritonserver and queried over HTTP and gRPC.

The server (nvidia-pytriton's tritonserver, python backend only; see triton_server.py) loads the python-backend
flavour of the detector and its ensemble from a repository written for the trained recipe detector, and beside it
those of the YOLO26 (NMS-free top-k) and RT-DETR fixtures. Their answers are compared with `dattn predict`'s
pipeline (dattn.runtime.Detector) run in-process on the same ONNX and images. The server's Python has numpy 1.x and
its own OpenCV and no dattn: the python models run on the copy of dattn.runtime that the repository carries.
"""

import ast
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from triton_server import TritonServer, missing_reason

import dattn
from dattn.exporting.triton import write_triton_repository
from dattn.runtime import Detector
from dattn.runtime.preprocess import Letterbox, read_image, to_network_input

pytestmark = pytest.mark.skipif(missing_reason() is not None, reason=str(missing_reason()))
httpclient = pytest.importorskip("tritonclient.http", reason="tritonclient is not installed (pip install '.[dev]')")
grpcclient = pytest.importorskip("tritonclient.grpc", reason="tritonclient[grpc] needs grpcio (pip install '.[dev]')")
from tritonclient.utils import InferenceServerException  # noqa: E402

IMGSZ = 160
NAME, OTHER = "shapes", "other"
ENSEMBLE, DETECTOR = f"{NAME}_python_ensemble", f"{NAME}_python"
BOX_ATOL_PX, SCORE_ATOL = 1e-3, 1e-5  # same ONNX, same ONNX Runtime: only batching may move the last float bits


@pytest.fixture(scope="module")
def onnx_path(recipe_weights, tmp_path_factory):
    return dattn.export(recipe_weights, imgsz=IMGSZ, output=tmp_path_factory.mktemp("triton-server") / "m.onnx",
                        verify=False, dynamic=True, batch=4)


@pytest.fixture(scope="module")
def head_exports(export_once, yolo26_run, rtdetr_run):
    """{model name: ONNX} of the fixtures whose heads are not anchor grids (shared with tests/test_heads.py)."""
    from checkpoints import KINDS

    return {kind: export_once(run / "best.pt", f"{kind}-17.onnx", imgsz=KINDS[kind].imgsz, opset=17)[0]
            for kind, run in (("yolo26", yolo26_run), ("rtdetr", rtdetr_run))}


@pytest.fixture(scope="module")
def repository(onnx_path, head_exports):
    """A repository shared with the user's notes, another model (the same detector, batches of at most 2), and the
    YOLO26 and RT-DETR detectors."""
    folder = onnx_path.parent / "repository"
    folder.mkdir()
    (folder / "NOTES.txt").write_text("the user's notes, which Triton ignores")
    write_triton_repository(folder, onnx_path, name=NAME, max_batch_size=8)
    write_triton_repository(folder, onnx_path, name=OTHER, max_batch_size=2)
    for name, path in head_exports.items():
        write_triton_repository(folder, path, name=name)
    return folder


@pytest.fixture(scope="module")
def server(repository, head_exports):
    ensembles = [ENSEMBLE, f"{OTHER}_python_ensemble", *(f"{name}_python_ensemble" for name in head_exports)]
    with TritonServer(repository, ensembles, repository.parent / "server", ("--exit-timeout-secs=5",)) as running:
        yield running


@pytest.fixture(scope="module")
def image_paths(recipe_data):
    """bus.jpg and zidane.jpg (ultralytics' assets) and the generated validation images the detector learnt to see."""
    from dattn.exporting.verify import sample_image_paths

    return sample_image_paths() + sorted((recipe_data.parent / "images" / "val").glob("*.png"))


def predictions(detector, image_paths):
    """{path: (boxes, scores, class ids)} from `dattn predict`'s pipeline, in-process."""
    results = {path: tuple(detector.predict(str(path))[:3]) for path in image_paths}
    assert sum(len(r[1]) for r in results.values()) >= len(results) // 2, "the trained detector should find shapes"
    return results


@pytest.fixture(scope="module")
def expected(onnx_path, image_paths):
    """The Triton repository letterboxes every image to the full size (a batch may mix sizes), where `dattn predict`
    letterboxes a dynamic export's single image to the smallest stride multiple: the Detector's steps, at full size."""
    detector = Detector(onnx_path)

    def full_size(image):
        fit = Letterbox(image.shape[:2], (IMGSZ, IMGSZ))
        (found,) = detector.postprocess(detector.infer(to_network_input([fit.apply(image)])), [fit])
        return tuple(found[:3])

    return {path: full_size(read_image(path)) for path in image_paths}


def encoded(protocol, paths):
    data = np.array([Path(p).read_bytes() for p in paths] or [], dtype=object).reshape(-1, 1)
    tensor = protocol.InferInput("IMAGE_BYTES", list(data.shape), "BYTES")
    tensor.set_data_from_numpy(data)
    return tensor


def arrays(protocol, batch, name="IMAGE", datatype="UINT8"):
    tensor = protocol.InferInput(name, list(batch.shape), datatype)
    tensor.set_data_from_numpy(batch)
    return tensor


def detections(result):
    """Per batch row: (boxes, scores, class ids), padding removed."""
    counts = result.as_numpy("NUM_DETECTIONS")[:, 0]
    boxes, scores, classes = (result.as_numpy(n) for n in ("BOXES", "SCORES", "CLASSES"))
    return [(boxes[i, :n], scores[i, :n], classes[i, :n]) for i, n in enumerate(counts)]


def assert_same_detections(got, want, label):
    boxes, scores, classes = got
    assert len(scores) == len(want[1]), f"{label}: {len(scores)} detections, the pipeline finds {len(want[1])}"
    assert np.array_equal(classes, want[2]), label
    np.testing.assert_allclose(boxes, want[0], rtol=0, atol=BOX_ATOL_PX, err_msg=label)
    np.testing.assert_allclose(scores, want[1], rtol=0, atol=SCORE_ATOL, err_msg=label)


def client(protocol, server):
    return protocol.InferenceServerClient(server.http_url if protocol is httpclient else server.grpc_url)


def test_the_server_python_has_no_dattn_so_the_repository_copy_is_what_runs(server):
    result = subprocess.run(["python", "-c", "import dattn"], capture_output=True, text=True, env=server.environment(),
                            cwd=server.workdir)  # the python found first on the server's PATH, in its working directory
    assert result.returncode != 0 and "No module named 'dattn'" in result.stderr


def test_the_ensemble_and_the_models_it_uses_are_ready(server):
    with httpclient.InferenceServerClient(server.http_url) as http:
        ready = {m["name"] for m in http.get_model_repository_index() if m.get("state") == "READY"}
    assert ready == {f"{model}{suffix}" for model in (NAME, OTHER, "yolo26", "rtdetr")
                     for suffix in ("_python_ensemble", "_python", "_preprocess", "_postprocess")}


@pytest.mark.parametrize("name", ["yolo26", "rtdetr"])
def test_every_head_gives_the_detections_of_dattn_predict(server, head_exports, name, request):
    from runtime_models import sample_images, validation_images

    images = sample_images() + validation_images(request.getfixturevalue(f"{name}_run"), 6)
    want = predictions(Detector(head_exports[name]), images)  # static exports: the full size, as Triton
    with httpclient.InferenceServerClient(server.http_url) as http:
        for path in images:
            (got,) = detections(http.infer(f"{name}_python_ensemble", [encoded(httpclient, [path])]))
            assert_same_detections(got, want[path], f"{name}: {path.name}")


def test_two_models_of_one_repository_serve_side_by_side(server, image_paths, expected):
    with httpclient.InferenceServerClient(server.http_url) as http:
        for path in image_paths[:3]:
            for model in (ENSEMBLE, f"{OTHER}_python_ensemble"):
                (got,) = detections(http.infer(model, [encoded(httpclient, [path])]))
                assert_same_detections(got, expected[path], f"{path.name} from {model}")
        with pytest.raises(InferenceServerException, match="batch-size must be <= 2"):
            http.infer(f"{OTHER}_python_ensemble", [encoded(httpclient, image_paths[:3])])


@pytest.mark.parametrize("protocol", [httpclient, grpcclient], ids=["http", "grpc"])
def test_encoded_images_give_the_pipelines_detections(server, image_paths, expected, protocol):
    with client(protocol, server) as triton:
        for path in image_paths:
            (got,) = detections(triton.infer(ENSEMBLE, [encoded(protocol, [path])]))
            assert_same_detections(got, expected[path], path.name)
        batch = image_paths[:4]  # one request, four encoded images of different sizes
        for path, got in zip(batch, detections(triton.infer(ENSEMBLE, [encoded(protocol, batch)]))):
            assert_same_detections(got, expected[path], f"{path.name} in a batch of 4")


@pytest.mark.parametrize("protocol", [httpclient, grpcclient], ids=["http", "grpc"])
def test_raw_bgr_arrays_give_the_pipelines_detections(server, image_paths, expected, protocol):
    validation = [p for p in image_paths if p.suffix == ".png"][:5]  # generated images share one size: one request
    with client(protocol, server) as triton:
        results = detections(triton.infer(ENSEMBLE, [arrays(protocol, np.stack([read_image(p) for p in validation]))]))
        for path, got in zip(validation, results):
            assert_same_detections(got, expected[path], f"{path.name} as an array")
        bus = image_paths[0]
        (got,) = detections(triton.infer(ENSEMBLE, [arrays(protocol, read_image(bus)[None])]))
        assert_same_detections(got, expected[bus], "bus.jpg as an array")


def test_the_python_detector_returns_onnx_runtimes_raw_output(server, onnx_path, image_paths):
    import onnxruntime

    batch = to_network_input([Letterbox(read_image(p).shape[:2], (IMGSZ, IMGSZ)).apply(read_image(p)) for p in image_paths[:3]])
    want = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(None, {"images": batch})[0]
    with httpclient.InferenceServerClient(server.http_url) as http:
        got = http.infer(DETECTOR, [arrays(httpclient, batch, "images", "FP32")]).as_numpy("output0")
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


def batch_counts(http, model):
    """{batch size: executions} from the server's statistics API."""
    (stats,) = http.get_inference_statistics(model)["model_stats"]
    return {s["batch_size"]: s["compute_infer"]["count"] for s in stats.get("batch_stats", [])}


@pytest.mark.parametrize("protocol", [httpclient, grpcclient], ids=["http", "grpc"])
def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(server, image_paths, expected, protocol):
    threads, per_thread = 16, 4
    with httpclient.InferenceServerClient(server.http_url) as http:
        before = batch_counts(http, DETECTOR)
    failures = []

    def send(worker):
        with client(protocol, server) as triton:
            for k in range(per_thread):
                path = image_paths[(worker * per_thread + k) % len(image_paths)]
                try:
                    (got,) = detections(triton.infer(ENSEMBLE, [encoded(protocol, [path])]))
                    assert_same_detections(got, expected[path], f"worker {worker}, {path.name}")
                except Exception as error:  # reported below, after every thread has finished
                    failures.append(f"{type(error).__name__}: {error}")

    workers = [threading.Thread(target=send, args=(w,)) for w in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not failures, failures[:3]
    with httpclient.InferenceServerClient(server.http_url) as http:
        after = batch_counts(http, DETECTOR)
    grown = {size: after[size] - before.get(size, 0) for size in after if after[size] > before.get(size, 0)}
    assert sum(size * n for size, n in grown.items()) == threads * per_thread, grown
    assert max(grown) > 1, f"the dynamic batcher formed no batch larger than one: {grown}"


def bad_requests(protocol, image_paths, tmp_path):
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(image_paths[0].read_bytes()[:200])  # a JPEG header and nothing else
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    image = read_image(image_paths[-1])
    return {
        "wrong shape (4 channels)": (ENSEMBLE, [arrays(protocol, np.zeros((1, 20, 20, 4), np.uint8))], "unexpected shape"),
        "wrong shape (no batch)": (ENSEMBLE, [arrays(protocol, image)], "batch-size must be <= 8"),
        "wrong dtype": (ENSEMBLE, [arrays(protocol, image[None].astype(np.float32), datatype="FP32")], "data-type is 'FP32'"),
        "empty batch": (ENSEMBLE, [arrays(protocol, np.zeros((0, 20, 20, 3), np.uint8))], "byte size mismatch"),
        "empty bytes batch": (ENSEMBLE, [encoded(protocol, [])], "expected 1 string elements"),
        "truncated JPEG": (ENSEMBLE, [encoded(protocol, [corrupt])], "not a decodable image"),
        "text as image": (ENSEMBLE, [encoded(protocol, [image_paths[1], text])], "IMAGE_BYTES[1]: not a decodable image"),
        "both inputs": (ENSEMBLE, [encoded(protocol, [image_paths[-1]]), arrays(protocol, image[None])], "exactly one"),
        "no input": (ENSEMBLE, [], "0 inputs"),
        "detector, wrong channels": (DETECTOR, [arrays(protocol, np.zeros((1, 4, IMGSZ, IMGSZ), np.float32), "images", "FP32")], "unexpected shape"),
        "detector, size off the stride": (DETECTOR, [arrays(protocol, np.zeros((1, 3, 37, 50), np.float32), "images", "FP32")], "ONNXRuntimeError"),
    }


@pytest.mark.parametrize("protocol", [httpclient, grpcclient], ids=["http", "grpc"])
def test_bad_requests_get_errors_and_the_server_answers_the_next_good_one(server, image_paths, expected, protocol, tmp_path):
    good = image_paths[-1]
    with client(protocol, server) as triton:
        for label, (model, inputs, message) in bad_requests(protocol, image_paths, tmp_path).items():
            with pytest.raises(InferenceServerException) as error:
                triton.infer(model, inputs)
            assert message in str(error.value), (label, str(error.value))
            assert server.process.poll() is None, f"the server died on: {label}"
            (got,) = detections(triton.infer(ENSEMBLE, [encoded(protocol, [good])]))
            assert_same_detections(got, expected[good], f"the good request after: {label}")


@pytest.mark.parametrize("grpc", [False, True], ids=["http", "grpc"])
def test_the_client_example_prints_the_pipelines_detections(server, repository, onnx_path, image_paths, expected, grpc):
    import onnx

    names = ast.literal_eval({p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}["names"])
    chosen = [image_paths[0], *[p for p in image_paths if p.suffix == ".png"][:3]]
    command = [sys.executable, str(repository / f"{NAME}_ensemble" / "client.py"), *map(str, chosen), "--model", ENSEMBLE,
               "--url", server.grpc_url if grpc else server.http_url] + (["--grpc"] if grpc else [])
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\S+): (\d+) detections$", result.stdout, re.MULTILINE)}
    assert counts == {str(p): len(expected[p][1]) for p in chosen}
    for path in chosen:
        boxes, scores, classes = expected[path]
        for box, score, cls in zip(boxes, scores, classes):
            line = "  {:<12} {:.2f}  [{:.1f}, {:.1f}, {:.1f}, {:.1f}]".format(names[int(cls)], score, *box)
            assert line in result.stdout.splitlines(), (line, result.stdout)
