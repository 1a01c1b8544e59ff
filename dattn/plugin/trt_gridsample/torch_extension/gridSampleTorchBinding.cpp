// SPDX-FileCopyrightText: Copyright (c) dattn contributors
// SPDX-License-Identifier: AGPL-3.0-or-later
//
// The plugin's CUDA kernel exposed to torch, so tests and benchmarks run the exact launcher TensorRT calls.
#include "gridSampleKernel.h"

#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/extension.h>

namespace
{

torch::Tensor gridSampleBilinear(torch::Tensor const& input, torch::Tensor const& grid, bool alignCorners)
{
    TORCH_CHECK(input.is_cuda() && grid.is_cuda(), "input and grid must be CUDA tensors");
    TORCH_CHECK(input.dim() == 4 && grid.dim() == 4 && grid.size(3) == 2 && grid.size(0) == input.size(0),
        "expects input (N,C,H,W) and grid (N,Ho,Wo,2)");
    TORCH_CHECK(input.scalar_type() == grid.scalar_type(), "input and grid must have the same dtype");
    TORCH_CHECK(input.scalar_type() == torch::kFloat32 || input.scalar_type() == torch::kFloat16,
        "only float32 and float16 are supported");
    c10::cuda::CUDAGuard const deviceGuard(input.device());
    torch::Tensor const x = input.contiguous();
    torch::Tensor const g = grid.contiguous();
    torch::Tensor output = torch::empty({x.size(0), x.size(1), g.size(1), g.size(2)}, x.options());

    dattn::GridSampleShape shape{};
    shape.batch = x.size(0);
    shape.channels = x.size(1);
    shape.inHeight = static_cast<int32_t>(x.size(2));
    shape.inWidth = static_cast<int32_t>(x.size(3));
    shape.outHeight = static_cast<int32_t>(g.size(1));
    shape.outWidth = static_cast<int32_t>(g.size(2));
    dattn::GridSampleDataType const dataType = x.scalar_type() == torch::kFloat16
        ? dattn::GridSampleDataType::kFLOAT16
        : dattn::GridSampleDataType::kFLOAT32;
    cudaError_t const status = dattn::launchGridSampleBilinear(x.data_ptr(), g.data_ptr(), output.data_ptr(), shape,
        alignCorners, dataType, c10::cuda::getCurrentCUDAStream());
    TORCH_CHECK(status == cudaSuccess, "grid sample kernel: ", cudaGetErrorString(status));
    return output;
}

int64_t channelsPerThread(int64_t batch, int64_t channels, int64_t outHeight, int64_t outWidth)
{
    dattn::GridSampleShape shape{batch, channels, 1, 1, static_cast<int32_t>(outHeight), static_cast<int32_t>(outWidth)};
    return dattn::channelsPerThreadFor(shape);
}

} // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, module)
{
    module.def("grid_sample_bilinear", &gridSampleBilinear, "bilinear grid sample, zeros padding (NCHW, grid NHW2)",
        pybind11::arg("input"), pybind11::arg("grid"), pybind11::arg("align_corners"));
    module.def("channels_per_thread", &channelsPerThread, "channels each thread handles for an output shape");
}
