"""The plugin's CUDA kernel as a torch extension, for the GPU tests and the kernel benchmark (needs torch and CUDA)."""

from dattn.plugin.build import plugin_source_dir


def load_torch_kernel(verbose: bool = False):
    """The CUDA kernel as a torch extension (`grid_sample_bilinear(x, grid, align_corners)`), for tests and benchmarks."""
    from torch.utils.cpp_extension import load

    source = plugin_source_dir()
    return load(name="dattn_grid_sample_kernel",
                sources=[str(source / "torch_extension" / "gridSampleTorchBinding.cpp"),
                         str(source / "gridSampleKernel.cu")],
                extra_include_paths=[str(source)], verbose=verbose)
