// SPDX-FileCopyrightText: Copyright (c) dattn contributors
// SPDX-License-Identifier: AGPL-3.0-or-later
//
// Bilinear grid sampling, zeros padding: one thread per output pixel and channel chunk, so the
// corner offsets and weights are computed once and reused for every channel of the chunk.
#include "gridSampleBilinear.h"
#include "gridSampleKernel.h"

#include <cuda_fp16.h>

namespace dattn
{
namespace
{

constexpr int32_t kThreadsPerBlock = 256;
// Enough threads in flight to keep the largest GPUs busy; below it channels are split across threads.
constexpr int64_t kTargetThreads = 128 * 1024;
constexpr int32_t kMinChannelsPerThread = 4;
constexpr int64_t kMaxGridY = 65535;

__device__ __forceinline__ float toFloat(float value)
{
    return value;
}

__device__ __forceinline__ float toFloat(__half value)
{
    return __half2float(value);
}

__device__ __forceinline__ void store(float* destination, float value)
{
    *destination = value;
}

__device__ __forceinline__ void store(__half* destination, float value)
{
    *destination = __float2half_rn(value);
}

struct LoadAsFloat
{
    template <typename T>
    __device__ __forceinline__ float operator()(T value) const
    {
        return toFloat(value);
    }
};

template <typename T>
__global__ void gridSampleBilinearKernel(T const* __restrict__ input, T const* __restrict__ grid,
    T* __restrict__ output, GridSampleShape shape, int32_t channelsPerThread, bool alignCorners)
{
    int64_t const outPlane = static_cast<int64_t>(shape.outHeight) * shape.outWidth;
    // Consecutive threads take consecutive output columns: grid reads and output writes coalesce.
    int64_t const pixel = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (pixel >= shape.batch * outPlane)
    {
        return;
    }
    int64_t const n = pixel / outPlane;
    int64_t const pixelInPlane = pixel - n * outPlane;

    BilinearTaps const taps = computeBilinearTaps(toFloat(grid[2 * pixel]), toFloat(grid[2 * pixel + 1]),
        shape.inHeight, shape.inWidth, alignCorners);

    int64_t const channelBegin = static_cast<int64_t>(blockIdx.y) * channelsPerThread;
    int64_t const channelEnd = min(shape.channels, channelBegin + channelsPerThread);
    int64_t const inPlane = static_cast<int64_t>(shape.inHeight) * shape.inWidth;
    T const* inputPlane = input + (n * shape.channels + channelBegin) * inPlane;
    T* outputValue = output + (n * shape.channels + channelBegin) * outPlane + pixelInPlane;
    for (int64_t c = channelBegin; c < channelEnd; ++c)
    {
        store(outputValue, sampleBilinear(taps, inputPlane, LoadAsFloat{}));
        inputPlane += inPlane;
        outputValue += outPlane;
    }
}

int64_t ceilDiv(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

template <typename T>
cudaError_t launchTyped(void const* input, void const* grid, void* output, GridSampleShape const& shape,
    bool alignCorners, cudaStream_t stream)
{
    int64_t const pixels = shape.batch * shape.outHeight * shape.outWidth;
    int32_t const channelsPerThread = channelsPerThreadFor(shape);
    int64_t const blocksX = ceilDiv(pixels, kThreadsPerBlock);
    int64_t const blocksY = ceilDiv(shape.channels, channelsPerThread);
    if (blocksX > INT32_MAX || blocksY > kMaxGridY)
    {
        return cudaErrorInvalidValue;
    }
    dim3 const blocks(static_cast<uint32_t>(blocksX), static_cast<uint32_t>(blocksY));
    gridSampleBilinearKernel<T><<<blocks, kThreadsPerBlock, 0, stream>>>(static_cast<T const*>(input),
        static_cast<T const*>(grid), static_cast<T*>(output), shape, channelsPerThread, alignCorners);
    return cudaGetLastError();
}

} // namespace

int32_t channelsPerThreadFor(GridSampleShape const& shape)
{
    int64_t const pixels = shape.batch * shape.outHeight * shape.outWidth;
    int64_t channelsPerThread = shape.channels;
    while (channelsPerThread > kMinChannelsPerThread && pixels * ceilDiv(shape.channels, channelsPerThread) < kTargetThreads)
    {
        channelsPerThread = ceilDiv(channelsPerThread, 2);
    }
    // gridDim.y is limited to 65535 chunks.
    channelsPerThread = channelsPerThread > ceilDiv(shape.channels, kMaxGridY) ? channelsPerThread
                                                                               : ceilDiv(shape.channels, kMaxGridY);
    return static_cast<int32_t>(channelsPerThread < 1 ? 1 : channelsPerThread);
}

cudaError_t launchGridSampleBilinear(void const* input, void const* grid, void* output, GridSampleShape const& shape,
    bool alignCorners, GridSampleDataType dataType, cudaStream_t stream)
{
    if (shape.batch < 0 || shape.channels < 0 || shape.inHeight < 0 || shape.inWidth < 0 || shape.outHeight < 0
        || shape.outWidth < 0)
    {
        return cudaErrorInvalidValue;
    }
    if (shape.batch == 0 || shape.channels == 0 || shape.outHeight == 0 || shape.outWidth == 0)
    {
        return cudaSuccess; // empty output: nothing to write
    }
    switch (dataType)
    {
    case GridSampleDataType::kFLOAT32:
        return launchTyped<float>(input, grid, output, shape, alignCorners, stream);
    case GridSampleDataType::kFLOAT16:
        return launchTyped<__half>(input, grid, output, shape, alignCorners, stream);
    }
    return cudaErrorInvalidValue;
}

} // namespace dattn
