// SPDX-FileCopyrightText: Copyright (c) dattn contributors
// SPDX-License-Identifier: AGPL-3.0-or-later
//
// Host build of the kernel's per-sample arithmetic (gridSampleBilinear.h), exported with C linkage
// so tests can load it with ctypes and compare it with torch without a GPU.
#include "../gridSampleBilinear.h"

#include <stdint.h>

namespace
{

struct LoadFloat
{
    float operator()(float value) const
    {
        return value;
    }
};

} // namespace

// Same layouts as the CUDA launcher: input NCHW, grid N x outH x outW x 2 (x, y), output N x C x outH x outW.
extern "C" void dattnGridSampleBilinearHost(float const* input, float const* grid, float* output, int64_t batch,
    int64_t channels, int32_t inHeight, int32_t inWidth, int32_t outHeight, int32_t outWidth, int32_t alignCorners)
{
    int64_t const inPlane = static_cast<int64_t>(inHeight) * inWidth;
    int64_t const outPlane = static_cast<int64_t>(outHeight) * outWidth;
    for (int64_t n = 0; n < batch; ++n)
    {
        for (int64_t p = 0; p < outPlane; ++p)
        {
            float const* xy = grid + 2 * (n * outPlane + p);
            dattn::BilinearTaps const taps
                = dattn::computeBilinearTaps(xy[0], xy[1], inHeight, inWidth, alignCorners != 0);
            for (int64_t c = 0; c < channels; ++c)
            {
                float const* plane = input + (n * channels + c) * inPlane;
                output[(n * channels + c) * outPlane + p] = dattn::sampleBilinear(taps, plane, LoadFloat{});
            }
        }
    }
}
