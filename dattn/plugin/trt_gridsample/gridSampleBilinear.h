// SPDX-FileCopyrightText: Copyright (c) dattn contributors
// SPDX-License-Identifier: AGPL-3.0-or-later
//
// Per-sample arithmetic of bilinear grid sampling with zeros padding, shared by the CUDA kernel
// and the host harness. Plain C++ when not compiled by nvcc.
#ifndef DATTN_GRID_SAMPLE_BILINEAR_H
#define DATTN_GRID_SAMPLE_BILINEAR_H

#include <math.h>
#include <stdint.h>

#if defined(__CUDACC__)
#define DATTN_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define DATTN_HOST_DEVICE inline
#endif

namespace dattn
{

// Coordinates at or beyond this magnitude can never touch a pixel; NaN fails the comparison too.
constexpr float kLargestUsefulCoordinate = 1.0e9f;
// Where a non-finite or huge coordinate is moved: every corner is then out of bounds (as torch's CUDA kernel does).
constexpr float kOutOfRangeCoordinate = -100.0f;

// Normalised [-1, 1] coordinate -> pixel coordinate, the two conventions of torch/ONNX GridSample.
DATTN_HOST_DEVICE float unnormalizeCoordinate(float coord, int32_t size, bool alignCorners)
{
    float const pixel = alignCorners ? ((coord + 1.0f) * 0.5f) * static_cast<float>(size - 1)
                                     : ((coord + 1.0f) * static_cast<float>(size) - 1.0f) * 0.5f;
    // Guards the float -> int conversion below from NaN, inf and overflow.
    return (pixel > -kLargestUsefulCoordinate && pixel < kLargestUsefulCoordinate) ? pixel : kOutOfRangeCoordinate;
}

// The four neighbours of one sampling point: element offsets inside one HxW plane (-1 when outside
// the image, so that corner adds nothing) and bilinear weights, in the order nw, ne, sw, se.
struct BilinearTaps
{
    int64_t offset[4];
    float weight[4];
};

DATTN_HOST_DEVICE BilinearTaps computeBilinearTaps(
    float gridX, float gridY, int32_t height, int32_t width, bool alignCorners)
{
    float const x = unnormalizeCoordinate(gridX, width, alignCorners);
    float const y = unnormalizeCoordinate(gridY, height, alignCorners);
    float const x0f = floorf(x);
    float const y0f = floorf(y);
    int32_t const x0 = static_cast<int32_t>(x0f);
    int32_t const y0 = static_cast<int32_t>(y0f);

    // Same products, in the same operand order, as torch's kernels, so fp32 results agree to rounding.
    float const towardLeft = (x0f + 1.0f) - x;
    float const towardRight = x - x0f;
    float const towardTop = (y0f + 1.0f) - y;
    float const towardBottom = y - y0f;

    bool const x0Inside = x0 >= 0 && x0 < width;
    bool const x1Inside = x0 + 1 >= 0 && x0 + 1 < width;
    bool const y0Inside = y0 >= 0 && y0 < height;
    bool const y1Inside = y0 + 1 >= 0 && y0 + 1 < height;
    int64_t const row0 = static_cast<int64_t>(y0) * width;
    int64_t const row1 = row0 + width;

    BilinearTaps taps;
    taps.offset[0] = (y0Inside && x0Inside) ? row0 + x0 : -1;
    taps.offset[1] = (y0Inside && x1Inside) ? row0 + x0 + 1 : -1;
    taps.offset[2] = (y1Inside && x0Inside) ? row1 + x0 : -1;
    taps.offset[3] = (y1Inside && x1Inside) ? row1 + x0 + 1 : -1;
    taps.weight[0] = towardLeft * towardTop;
    taps.weight[1] = towardRight * towardTop;
    taps.weight[2] = towardLeft * towardBottom;
    taps.weight[3] = towardRight * towardBottom;
    return taps;
}

// One output value from one input plane; Load turns a stored element (float or half) into float.
template <typename T, typename Load>
DATTN_HOST_DEVICE float sampleBilinear(BilinearTaps const& taps, T const* plane, Load load)
{
    float value = 0.0f;
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
    for (int corner = 0; corner < 4; ++corner)
    {
        // Skipped rather than weighted by zero, so an inf/NaN pixel outside the footprint cannot leak in.
        if (taps.offset[corner] >= 0)
        {
            value += load(plane[taps.offset[corner]]) * taps.weight[corner];
        }
    }
    return value;
}

} // namespace dattn

#endif // DATTN_GRID_SAMPLE_BILINEAR_H
