"""A real `tritonserver` on loopback ports, for the tests and the benchmark.

The server comes from the nvidia-pytriton wheel (installed with --no-deps: a genuine tritonserver with the python
backend only). Its python backend stub embeds the Python found first on PATH, and it needs numpy 1.x there (with
numpy 2 it answers with empty tensors), so the server runs with a separate environment on PATH: by default the
repository's .venv-triton (`make` creates it: numpy<2, opencv-python-headless, onnxruntime), or $DATTN_TRITON_ENV.
No dattn is installed there, and the server runs in its work folder (the stub puts the working directory on
sys.path): the python models must import the copy of dattn.runtime that the repository carries.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV_VARIABLE = "DATTN_TRITON_ENV"
STARTUP_TIMEOUT_S = 180


def server_python_env() -> Path:
    return Path(os.environ.get(ENV_VARIABLE) or REPO / ".venv-triton")


def pytriton_dir() -> Path | None:
    spec = importlib.util.find_spec("pytriton")  # finds the package without importing it (its deps are not installed)
    return Path(spec.submodule_search_locations[0]) if spec and spec.submodule_search_locations else None


def missing_reason() -> str | None:
    """Why a server cannot start here (None when it can)."""
    pytriton = pytriton_dir()
    if pytriton is None or not (pytriton / "tritonserver" / "bin" / "tritonserver").is_file():
        return "tritonserver is not installed (pip install --no-deps nvidia-pytriton; `make` does it)"
    python = server_python_env() / "bin" / "python"
    if not python.is_file():
        return f"no Python environment for the server's python backend at {server_python_env()} (`make` creates .venv-triton)"
    check = subprocess.run([str(python), "-c", "import numpy, cv2, onnxruntime, sys; "
                            "assert numpy.__version__ < '2', numpy.__version__; print('%d.%d' % sys.version_info[:2])"],
                           capture_output=True, text=True)
    if check.returncode != 0:
        return f"{python} lacks numpy<2, opencv or onnxruntime: {check.stderr.strip().splitlines()[-1:]}"
    if not (pytriton / "tritonserver" / "python_backend_stubs" / check.stdout.strip()).is_dir():
        return f"nvidia-pytriton has no python backend stub for Python {check.stdout.strip()}"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TritonServer:
    """`with TritonServer(repository, ["m_ensemble"], workdir) as server:` a started server, always stopped after.

    Models load explicitly (an ensemble brings the models it uses). server.http_url / server.grpc_url are
    "127.0.0.1:<port>"; server.log() is what the server printed.
    """

    def __init__(self, repository: Path, models: list[str], workdir: Path, extra_args: tuple[str, ...] = ()):
        self.repository, self.models, self.workdir, self.extra_args = Path(repository), list(models), Path(workdir), extra_args
        self.process = None
        self.http_url = self.grpc_url = None
        self.log_path = self.workdir / "tritonserver.log"

    def _backends(self) -> Path:
        """The python backend folder with the stub for the server environment's Python version."""
        source = pytriton_dir() / "tritonserver"
        python = server_python_env() / "bin" / "python"
        version = subprocess.run([str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        backends = self.workdir / "backends"
        shutil.copytree(source / "backends", backends, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(source / "python_backend_stubs" / version / "triton_python_backend_stub", backends / "python")
        return backends

    def command(self, http_port: int, grpc_port: int) -> list[str]:
        return [str(pytriton_dir() / "tritonserver" / "bin" / "tritonserver"),
                f"--model-repository={self.repository}", f"--backend-directory={self._backends()}",
                "--model-control-mode=explicit", *(f"--load-model={m}" for m in self.models),
                "--http-address=127.0.0.1", f"--http-port={http_port}",
                "--grpc-address=127.0.0.1", f"--grpc-port={grpc_port}",
                "--allow-metrics=false", "--log-verbose=0", *self.extra_args]

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        libs = pytriton_dir().parent / "nvidia_pytriton.libs"  # the wheel's bundled libraries (the stub needs them once copied)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(libs), env.get("LD_LIBRARY_PATH")]))
        env["PATH"] = os.pathsep.join([str(server_python_env() / "bin"), env.get("PATH", "")])
        return env

    def start(self) -> "TritonServer":
        self.workdir.mkdir(parents=True, exist_ok=True)
        http_port, grpc_port = free_port(), free_port()
        self.http_url, self.grpc_url = f"127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.command(http_port, grpc_port), stdout=log, stderr=subprocess.STDOUT,
                                            env=self.environment(), cwd=self.workdir, start_new_session=True)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tritonserver exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            if self.ready():
                return self
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"tritonserver not ready after {STARTUP_TIMEOUT_S} s:\n{self.log()[-4000:]}")

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # tritonserver unloads its models and exits on SIGTERM
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)  # its own session: the server and the python stubs it started
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> "TritonServer":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
