#include "gridSamplePluginCommon.h"

#include "gridSampleKernel.h"

#include <cstdio>
#include <cstring>

namespace dattn
{
namespace plugin
{
namespace
{

#if NV_TENSORRT_MAJOR > 8 || (NV_TENSORRT_MAJOR == 8 && NV_TENSORRT_MINOR >= 6)
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

} // namespace

bool readAlignCorners(nvinfer1::PluginFieldCollection const* fields, int32_t& alignCorners) noexcept
{
    if (fields == nullptr)
    {
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

bool isSupportedFormat(int32_t pos, nvinfer1::PluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    if (inOut == nullptr || nbInputs != kNbInputs || nbOutputs != kNbOutputs || pos < 0 || pos >= nbInputs + nbOutputs)
    {
        return false;
    }
    nvinfer1::PluginTensorDesc const& desc = inOut[pos];
    bool const floating = desc.type == nvinfer1::DataType::kFLOAT || desc.type == nvinfer1::DataType::kHALF;
    // Earlier positions are already fixed when TensorRT asks about pos, so comparing with X suffices.
    bool const sameAsInput = pos == kInputIndex || desc.type == inOut[kInputIndex].type;
    return desc.format == nvinfer1::TensorFormat::kLINEAR && floating && sameAsInput;
}

int32_t enqueueGridSample(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
    void const* const* inputs, void* const* outputs, int32_t alignCorners, cudaStream_t stream) noexcept
{
    nvinfer1::Dims const& x = inputDesc[kInputIndex].dims;
    nvinfer1::Dims const& grid = inputDesc[kGridIndex].dims;
    nvinfer1::Dims const& y = outputDesc[0].dims;
    if (x.nbDims != 4 || grid.nbDims != 4 || y.nbDims != 4 || grid.d[3] != 2 || grid.d[0] != x.d[0])
    {
        logPluginError("DAttnGridSample: expects X (N,C,H,W), grid (N,Ho,Wo,2) and Y (N,C,Ho,Wo)");
        return -1;
    }
    GridSampleShape shape{};
    shape.batch = x.d[0];
    shape.channels = x.d[1];
    shape.inHeight = static_cast<int32_t>(x.d[2]);
    shape.inWidth = static_cast<int32_t>(x.d[3]);
    shape.outHeight = static_cast<int32_t>(grid.d[1]);
    shape.outWidth = static_cast<int32_t>(grid.d[2]);
    GridSampleDataType const dataType = inputDesc[kInputIndex].type == nvinfer1::DataType::kHALF
        ? GridSampleDataType::kFLOAT16
        : GridSampleDataType::kFLOAT32;
    cudaError_t const status = launchGridSampleBilinear(
        inputs[kInputIndex], inputs[kGridIndex], outputs[0], shape, alignCorners != 0, dataType, stream);
    if (status != cudaSuccess)
    {
        logPluginError(cudaGetErrorString(status));
        return -1;
    }
    return 0;
}

void logPluginError(char const* message) noexcept
{
#if NV_TENSORRT_MAJOR > 8 || (NV_TENSORRT_MAJOR == 8 && NV_TENSORRT_MINOR >= 6)
    nvinfer1::ILogger* logger = gLoggerFinder != nullptr ? gLoggerFinder->findLogger() : nullptr;
    if (logger != nullptr)
    {
        logger->log(nvinfer1::ILogger::Severity::kERROR, message);
        return;
    }
#endif
    std::fprintf(stderr, "[dattn plugin] %s\n", message);
}

#if NV_TENSORRT_MAJOR > 8 || (NV_TENSORRT_MAJOR == 8 && NV_TENSORRT_MINOR >= 6)
void setPluginLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept
{
    gLoggerFinder = finder;
}
#endif

} // namespace plugin
} // namespace dattn
