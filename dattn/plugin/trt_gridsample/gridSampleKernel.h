// SPDX-FileCopyrightText: Copyright (c) dattn contributors
// SPDX-License-Identifier: AGPL-3.0-or-later
//
// Launcher of the bilinear grid-sampling kernel: the one entry point the TensorRT plugins,
// the torch test extension and the benchmark share.
#ifndef DATTN_GRID_SAMPLE_KERNEL_H
#define DATTN_GRID_SAMPLE_KERNEL_H

#include <cuda_runtime_api.h>
#include <stdint.h>

namespace dattn
{

enum class GridSampleDataType : int32_t
{
    kFLOAT32 = 0,
    kFLOAT16 = 1, // storage only: the arithmetic runs in fp32
};

// input (batch, channels, inHeight, inWidth), grid (batch, outHeight, outWidth, 2) in (x, y) order,
// output (batch, channels, outHeight, outWidth); all contiguous.
struct GridSampleShape
{
    int64_t batch;
    int64_t channels;
    int32_t inHeight;
    int32_t inWidth;
    int32_t outHeight;
    int32_t outWidth;
};

// torch.nn.functional.grid_sample(mode="bilinear", padding_mode="zeros") on the given stream.
// Returns cudaSuccess, cudaErrorInvalidValue for a bad shape, or the launch error.
cudaError_t launchGridSampleBilinear(void const* input, void const* grid, void* output, GridSampleShape const& shape,
    bool alignCorners, GridSampleDataType dataType, cudaStream_t stream);

// Channels each thread handles: all of them when there are enough pixels to fill the GPU, fewer otherwise.
int32_t channelsPerThreadFor(GridSampleShape const& shape);

} // namespace dattn

#endif // DATTN_GRID_SAMPLE_KERNEL_H
