"""Device memory, copies and streams through ctypes on libcudart: the one CUDA binding the TensorRT runner uses.

It needs nothing installed beyond the CUDA runtime library that TensorRT itself needs (JetPack 4.6 ships
libcudart.so.10.2 in /usr/local/cuda/lib64), so it works where cuda-python or PyCUDA are not available.

`python -m dattn.runtime.cuda` prints the compute capability of device 0 as e.g. `72` (build_engine.sh uses it).

Python 3.6 compatible (this file travels to JetPack 4.6 in the Jetson bundle and into Triton's python backend).
"""

import ctypes
import ctypes.util
import glob
import os
import sys

# cudaMemcpyKind
HOST_TO_DEVICE = 1
DEVICE_TO_HOST = 2
# cudaDeviceAttr
_COMPUTE_CAPABILITY_MAJOR = 75
_COMPUTE_CAPABILITY_MINOR = 76
_LIBRARY_FOLDERS = ("/usr/local/cuda/lib64", "/usr/local/cuda/targets/aarch64-linux/lib",
                    "/usr/local/cuda/targets/x86_64-linux/lib", "/usr/lib/aarch64-linux-gnu", "/usr/lib/x86_64-linux-gnu")


class CudaError(RuntimeError):
    """A CUDA runtime call failed; the message names the call and CUDA's reason."""


def _candidate_libraries():
    """libcudart names and paths to try, the generic name first, then versioned ones, newest first."""
    names = ["libcudart.so"]
    found = ctypes.util.find_library("cudart")
    if found:
        names.append(found)
    folders = list(_LIBRARY_FOLDERS)
    cuda_home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if cuda_home:
        folders.insert(0, os.path.join(cuda_home, "lib64"))
    for folder in folders:
        names += sorted(glob.glob(os.path.join(folder, "libcudart.so*")), reverse=True)
    # pip wheels of the CUDA runtime (nvidia-cuda-runtime-cu12 / -cu13), which TensorRT's wheels use
    for entry in sys.path:
        names += sorted(glob.glob(os.path.join(entry, "nvidia", "cu*", "lib", "libcudart.so*")), reverse=True)
        names += sorted(glob.glob(os.path.join(entry, "nvidia", "cuda_runtime", "lib", "libcudart.so*")), reverse=True)
    return names


def load_libcudart():
    """The CUDA runtime library, loaded; CudaError when there is none."""
    for name in _candidate_libraries():
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    raise CudaError("the CUDA runtime library (libcudart.so) is not found: install the CUDA runtime (on a Jetson it "
                    "comes with JetPack in /usr/local/cuda/lib64) or set CUDA_HOME")


class CudaRuntime(object):
    """The few libcudart calls a TensorRT runner needs, each raising CudaError on failure."""

    def __init__(self, library=None):
        self.lib = library if library is not None else load_libcudart()
        self.lib.cudaGetErrorString.restype = ctypes.c_char_p
        self.lib.cudaGetErrorString.argtypes = [ctypes.c_int]
        self.lib.cudaMalloc.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t]
        self.lib.cudaFree.argtypes = [ctypes.c_void_p]
        self.lib.cudaMemcpy.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        self.lib.cudaStreamCreate.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
        self.lib.cudaStreamSynchronize.argtypes = [ctypes.c_void_p]
        self.lib.cudaStreamDestroy.argtypes = [ctypes.c_void_p]
        self.lib.cudaSetDevice.argtypes = [ctypes.c_int]
        self.lib.cudaGetDeviceCount.argtypes = [ctypes.POINTER(ctypes.c_int)]
        self.lib.cudaDeviceGetAttribute.argtypes = [ctypes.POINTER(ctypes.c_int), ctypes.c_int, ctypes.c_int]
        self.lib.cudaRuntimeGetVersion.argtypes = [ctypes.POINTER(ctypes.c_int)]

    def _check(self, status, call):
        if status != 0:
            reason = self.lib.cudaGetErrorString(status)
            raise CudaError("CUDA error {} in {}: {}".format(status, call, reason.decode() if reason else "unknown"))

    def runtime_version(self):
        """The CUDA runtime's version as (major, minor)."""
        version = ctypes.c_int()
        self._check(self.lib.cudaRuntimeGetVersion(ctypes.byref(version)), "cudaRuntimeGetVersion")
        return version.value // 1000, (version.value % 1000) // 10

    def device_count(self):
        count = ctypes.c_int()
        self._check(self.lib.cudaGetDeviceCount(ctypes.byref(count)), "cudaGetDeviceCount")
        return count.value

    def set_device(self, index):
        self._check(self.lib.cudaSetDevice(int(index)), "cudaSetDevice({})".format(index))

    def compute_capability(self, device=0):
        """(major, minor) of `device`, e.g. (7, 2) on Xavier."""
        major, minor = ctypes.c_int(), ctypes.c_int()
        self._check(self.lib.cudaDeviceGetAttribute(ctypes.byref(major), _COMPUTE_CAPABILITY_MAJOR, int(device)),
                    "cudaDeviceGetAttribute")
        self._check(self.lib.cudaDeviceGetAttribute(ctypes.byref(minor), _COMPUTE_CAPABILITY_MINOR, int(device)),
                    "cudaDeviceGetAttribute")
        return major.value, minor.value

    def malloc(self, nbytes):
        """Address of `nbytes` of device memory."""
        pointer = ctypes.c_void_p()
        self._check(self.lib.cudaMalloc(ctypes.byref(pointer), max(int(nbytes), 1)), "cudaMalloc({})".format(nbytes))
        return pointer.value

    def free(self, address):
        self._check(self.lib.cudaFree(ctypes.c_void_p(address)), "cudaFree")

    def copy_to_device(self, address, array):
        """Copy a C-contiguous numpy array to device memory at `address` (returns when the copy is done)."""
        self._check(self.lib.cudaMemcpy(address, array.ctypes.data, array.nbytes, HOST_TO_DEVICE),
                    "cudaMemcpy (host to device)")

    def copy_to_host(self, array, address):
        """Fill a C-contiguous numpy array from device memory at `address`."""
        self._check(self.lib.cudaMemcpy(array.ctypes.data, address, array.nbytes, DEVICE_TO_HOST),
                    "cudaMemcpy (device to host)")

    def create_stream(self):
        stream = ctypes.c_void_p()
        self._check(self.lib.cudaStreamCreate(ctypes.byref(stream)), "cudaStreamCreate")
        return stream.value

    def synchronize(self, stream):
        self._check(self.lib.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    def destroy_stream(self, stream):
        self._check(self.lib.cudaStreamDestroy(stream), "cudaStreamDestroy")


class DeviceBuffers(object):
    """One device buffer per tensor name, grown when a larger shape needs more bytes, kept otherwise."""

    def __init__(self, cuda):
        self.cuda = cuda
        self._buffers = {}  # name -> (address, capacity in bytes)

    def address(self, name, nbytes):
        """A device address with room for `nbytes` for tensor `name`."""
        address, capacity = self._buffers.get(name, (None, 0))
        if address is None or nbytes > capacity:
            if address is not None:
                self.cuda.free(address)
            address = self.cuda.malloc(nbytes)
            self._buffers[name] = (address, nbytes)
        return address

    def capacity(self, name):
        return self._buffers.get(name, (None, 0))[1]

    def release(self):
        for address, _ in self._buffers.values():
            self.cuda.free(address)
        self._buffers.clear()


def main(argv=None):
    """Print device 0's compute capability as one number (e.g. 72), as CMake and nvcc spell architectures."""
    try:
        major, minor = CudaRuntime().compute_capability(0)
    except CudaError as error:
        sys.stderr.write("{}\n".format(error))
        return 1
    print("{}{}".format(major, minor))
    return 0


if __name__ == "__main__":
    sys.exit(main())
