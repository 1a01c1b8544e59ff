// SPDX-FileCopyrightText: Copyright (c) dattn contributors
// SPDX-License-Identifier: AGPL-3.0-or-later
#include "gridSamplePluginCommon.h"

#include "gridSampleKernel.h"

#include <cstdio>
#include <cstring>

#if defined(__GNUC__)
// Weak, so the library still loads where libnvinfer is not in reach (TensorRT for RTX, tests): errors then go
// to stderr instead of the dynamic loader refusing the library over an undefined symbol.
#pragma weak getLogger
#endif

namespace dattn
{
namespace plugin
{
namespace
{

using nvinfer1::DataType;
using nvinfer1::PluginTensorDesc;

#if DATTN_TRT_HAS_LOGGER_FINDER
nvinfer1::ILoggerFinder* gLoggerFinder{nullptr};
#endif

bool readInteger(nvinfer1::PluginField const& field, int64_t& value) noexcept
{
    if (field.data == nullptr || field.length != 1)
    {
        return false;
    }
    switch (field.type)
    {
    case nvinfer1::PluginFieldType::kINT8: value = *static_cast<int8_t const*>(field.data); return true;
    case nvinfer1::PluginFieldType::kINT16: value = *static_cast<int16_t const*>(field.data); return true;
    case nvinfer1::PluginFieldType::kINT32: value = *static_cast<int32_t const*>(field.data); return true;
#if NV_TENSORRT_MAJOR >= 10
    case nvinfer1::PluginFieldType::kINT64: value = *static_cast<int64_t const*>(field.data); return true;
#endif
    default: return false;
    }
}

bool isFloating(DataType type) noexcept
{
    return type == DataType::kFLOAT || type == DataType::kHALF;
}

// -1 is a dimension TensorRT does not know yet (configurePlugin); it agrees with anything.
bool agree(int64_t a, int64_t b) noexcept
{
    return a == -1 || b == -1 || a == b;
}

bool anyZero(nvinfer1::Dims const& dims) noexcept
{
    for (int32_t i = 0; i < dims.nbDims; ++i)
    {
        if (dims.d[i] == 0)
        {
            return true;
        }
    }
    return false;
}

bool knownAndIndexable(nvinfer1::Dims const& dims) noexcept
{
    for (int32_t i = 0; i < dims.nbDims; ++i)
    {
        // Heights and widths reach the kernel as int32.
        if (dims.d[i] < 0 || (i >= 1 && dims.d[i] > INT32_MAX))
        {
            return false;
        }
    }
    return true;
}

} // namespace

bool readAlignCorners(nvinfer1::PluginFieldCollection const* fields, int32_t& alignCorners) noexcept
{
    if (fields == nullptr || (fields->nbFields > 0 && fields->fields == nullptr))
    {
        logPluginError("DAttnGridSample: no attributes given (align_corners is required)");
        return false;
    }
    for (int32_t i = 0; i < fields->nbFields; ++i)
    {
        nvinfer1::PluginField const& field = fields->fields[i];
        if (field.name == nullptr || std::strcmp(field.name, kAlignCornersField) != 0)
        {
            continue; // plugin_version / plugin_namespace and unknown attributes are not ours to read
        }
        int64_t value{0};
        if (!readInteger(field, value) || (value != 0 && value != 1))
        {
            logPluginError("DAttnGridSample: align_corners must be one integer, 0 or 1");
            return false;
        }
        alignCorners = static_cast<int32_t>(value);
        return true;
    }
    logPluginError("DAttnGridSample: missing attribute align_corners");
    return false;
}

bool isSupportedFormat(int32_t pos, PluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    if (inOut == nullptr || nbInputs != kNbInputs || nbOutputs != kNbOutputs || pos < 0 || pos >= nbInputs + nbOutputs)
    {
        return false;
    }
    PluginTensorDesc const& desc = inOut[pos];
    // Earlier positions are already fixed when TensorRT asks about pos, so comparing with X suffices.
    bool const sameAsInput = pos == kInputIndex || desc.type == inOut[kInputIndex].type;
    return desc.format == nvinfer1::TensorFormat::kLINEAR && isFloating(desc.type) && sameAsInput;
}

char const* tensorProblem(PluginTensorDesc const& x, PluginTensorDesc const& grid, PluginTensorDesc const& y) noexcept
{
    if (!isFloating(x.type) || grid.type != x.type || y.type != x.type)
    {
        return "DAttnGridSample: X, grid and Y must share one type, float32 or float16";
    }
    if (x.format != nvinfer1::TensorFormat::kLINEAR || grid.format != nvinfer1::TensorFormat::kLINEAR
        || y.format != nvinfer1::TensorFormat::kLINEAR)
    {
        return "DAttnGridSample: X, grid and Y must be LINEAR";
    }
    nvinfer1::Dims const& xd = x.dims;
    nvinfer1::Dims const& gd = grid.dims;
    nvinfer1::Dims const& yd = y.dims;
    if (xd.nbDims != 4 || gd.nbDims != 4 || yd.nbDims != 4 || !agree(gd.d[3], 2)
        || !agree(gd.d[0], xd.d[0]))
    {
        return "DAttnGridSample: expects X (N,C,H,W), grid (N,Ho,Wo,2) and Y (N,C,Ho,Wo)";
    }
    if (!agree(yd.d[0], xd.d[0]) || !agree(yd.d[1], xd.d[1]) || !agree(yd.d[2], gd.d[1]) || !agree(yd.d[3], gd.d[2]))
    {
        return "DAttnGridSample: Y must be (N, C, Ho, Wo) of X (N, C, H, W) and grid (N, Ho, Wo, 2)";
    }
    return nullptr;
}

int32_t enqueueGridSample(PluginTensorDesc const* inputDesc, PluginTensorDesc const* outputDesc,
    void const* const* inputs, void* const* outputs, int32_t alignCorners, cudaStream_t stream) noexcept
{
    if (inputDesc == nullptr || outputDesc == nullptr || inputs == nullptr || outputs == nullptr)
    {
        logPluginError("DAttnGridSample: enqueue was given null descriptors or tensor arrays");
        return -1;
    }
    PluginTensorDesc const& x = inputDesc[kInputIndex];
    PluginTensorDesc const& grid = inputDesc[kGridIndex];
    PluginTensorDesc const& y = outputDesc[0];
    if (char const* problem = tensorProblem(x, grid, y))
    {
        logPluginError(problem);
        return -1;
    }
    if (!knownAndIndexable(x.dims) || !knownAndIndexable(grid.dims) || !knownAndIndexable(y.dims))
    {
        logPluginError("DAttnGridSample: enqueue needs known, non-negative dimensions (H, W, Ho, Wo < 2^31)");
        return -1;
    }
    if (anyZero(y.dims))
    {
        return 0; // nothing to write; TensorRT may pass null pointers for empty tensors
    }
    // An empty X (H or W of 0) is never read: every sample falls outside it and gives 0.
    if (outputs[0] == nullptr || inputs[kGridIndex] == nullptr || (inputs[kInputIndex] == nullptr && !anyZero(x.dims)))
    {
        logPluginError("DAttnGridSample: enqueue was given a null pointer for a non-empty tensor");
        return -1;
    }
    GridSampleShape shape{};
    shape.batch = x.dims.d[0];
    shape.channels = x.dims.d[1];
    shape.inHeight = static_cast<int32_t>(x.dims.d[2]);
    shape.inWidth = static_cast<int32_t>(x.dims.d[3]);
    shape.outHeight = static_cast<int32_t>(grid.dims.d[1]);
    shape.outWidth = static_cast<int32_t>(grid.dims.d[2]);
    GridSampleDataType const dataType
        = x.type == DataType::kHALF ? GridSampleDataType::kFLOAT16 : GridSampleDataType::kFLOAT32;
    cudaError_t const status = launchGridSampleBilinear(
        inputs[kInputIndex], inputs[kGridIndex], outputs[0], shape, alignCorners != 0, dataType, stream);
    if (status != cudaSuccess)
    {
        char message[256];
        std::snprintf(message, sizeof(message), "DAttnGridSample: kernel launch failed: %s", cudaGetErrorString(status));
        logPluginError(message);
        return -1;
    }
    return 0;
}

void logPluginError(char const* message) noexcept
{
    nvinfer1::ILogger* logger{nullptr};
#if DATTN_TRT_HAS_LOGGER_FINDER
    logger = gLoggerFinder != nullptr ? gLoggerFinder->findLogger() : nullptr;
#endif
    if (logger == nullptr && &getLogger != nullptr)
    {
        logger = getLogger();
    }
    if (logger != nullptr)
    {
        logger->log(nvinfer1::ILogger::Severity::kERROR, message);
        return;
    }
    std::fprintf(stderr, "[dattn plugin] %s\n", message);
}

void logCaughtException(char const* method, char const* what) noexcept
{
    char message[256];
    std::snprintf(message, sizeof(message), "DAttnGridSample: %s failed: %s", method, what != nullptr ? what : "");
    logPluginError(message);
}

#if DATTN_TRT_HAS_LOGGER_FINDER
void setPluginLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept
{
    gLoggerFinder = finder;
}
#endif

} // namespace plugin
} // namespace dattn
