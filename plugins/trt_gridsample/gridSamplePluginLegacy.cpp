#include "gridSamplePluginLegacy.h"

#if NV_TENSORRT_MAJOR < 10

#include <cstring>
#include <new>

namespace dattn
{
namespace plugin
{

using namespace nvinfer1;

namespace
{
// Serialized form: align_corners as one int32 in native byte order (little-endian on x86-64 and aarch64).
constexpr size_t kSerializationSize = sizeof(int32_t);
} // namespace

GridSamplePluginLegacy::GridSamplePluginLegacy(int32_t alignCorners)
    : mAlignCorners(alignCorners)
{
}

GridSamplePluginLegacy::GridSamplePluginLegacy(void const* data, size_t length)
{
    int32_t alignCorners{-1};
    if (data != nullptr && length == kSerializationSize)
    {
        std::memcpy(&alignCorners, data, sizeof(alignCorners));
    }
    mAlignCorners = (alignCorners == 0 || alignCorners == 1) ? alignCorners : -1;
}

bool GridSamplePluginLegacy::valid() const noexcept
{
    return mAlignCorners == 0 || mAlignCorners == 1;
}

IPluginV2DynamicExt* GridSamplePluginLegacy::clone() const noexcept
{
    auto* copy = new (std::nothrow) GridSamplePluginLegacy(mAlignCorners);
    if (copy != nullptr)
    {
        copy->setPluginNamespace(mNamespace.c_str());
    }
    return copy;
}

DimsExprs GridSamplePluginLegacy::getOutputDimensions(
    int32_t outputIndex, DimsExprs const* inputs, int32_t nbInputs, IExprBuilder& /*exprBuilder*/) noexcept
{
    DimsExprs output{};
    if (outputIndex != 0 || inputs == nullptr || nbInputs != kNbInputs || inputs[kInputIndex].nbDims != 4
        || inputs[kGridIndex].nbDims != 4)
    {
        logPluginError("DAttnGridSample: expects X (N,C,H,W) and grid (N,Ho,Wo,2)");
        output.nbDims = -1;
        return output;
    }
    // Y = (N, C) of X followed by (Ho, Wo) of the grid.
    output.nbDims = 4;
    output.d[0] = inputs[kInputIndex].d[0];
    output.d[1] = inputs[kInputIndex].d[1];
    output.d[2] = inputs[kGridIndex].d[1];
    output.d[3] = inputs[kGridIndex].d[2];
    return output;
}

bool GridSamplePluginLegacy::supportsFormatCombination(
    int32_t pos, PluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    return isSupportedFormat(pos, inOut, nbInputs, nbOutputs);
}

void GridSamplePluginLegacy::configurePlugin(
    DynamicPluginTensorDesc const* /*in*/, int32_t /*nbInputs*/, DynamicPluginTensorDesc const* /*out*/, int32_t /*nbOutputs*/) noexcept
{
}

size_t GridSamplePluginLegacy::getWorkspaceSize(
    PluginTensorDesc const* /*inputs*/, int32_t /*nbInputs*/, PluginTensorDesc const* /*outputs*/, int32_t /*nbOutputs*/) const noexcept
{
    return 0;
}

int32_t GridSamplePluginLegacy::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* outputDesc,
    void const* const* inputs, void* const* outputs, void* /*workspace*/, cudaStream_t stream) noexcept
{
    return enqueueGridSample(inputDesc, outputDesc, inputs, outputs, mAlignCorners, stream);
}

DataType GridSamplePluginLegacy::getOutputDataType(
    int32_t /*index*/, DataType const* inputTypes, int32_t /*nbInputs*/) const noexcept
{
    return inputTypes[kInputIndex];
}

char const* GridSamplePluginLegacy::getPluginType() const noexcept
{
    return kGridSamplePluginName;
}

char const* GridSamplePluginLegacy::getPluginVersion() const noexcept
{
    return kGridSamplePluginVersion;
}

int32_t GridSamplePluginLegacy::getNbOutputs() const noexcept
{
    return kNbOutputs;
}

int32_t GridSamplePluginLegacy::initialize() noexcept
{
    return 0;
}

void GridSamplePluginLegacy::terminate() noexcept {}

size_t GridSamplePluginLegacy::getSerializationSize() const noexcept
{
    return kSerializationSize;
}

void GridSamplePluginLegacy::serialize(void* buffer) const noexcept
{
    std::memcpy(buffer, &mAlignCorners, sizeof(mAlignCorners));
}

void GridSamplePluginLegacy::destroy() noexcept
{
    delete this;
}

void GridSamplePluginLegacy::setPluginNamespace(char const* pluginNamespace) noexcept
{
    mNamespace = pluginNamespace != nullptr ? pluginNamespace : "";
}

char const* GridSamplePluginLegacy::getPluginNamespace() const noexcept
{
    return mNamespace.c_str();
}

GridSamplePluginLegacyCreator::GridSamplePluginLegacyCreator()
{
    mFieldNames.emplace_back(kAlignCornersField, nullptr, PluginFieldType::kINT32, 1);
    mFieldNameCollection.nbFields = static_cast<int32_t>(mFieldNames.size());
    mFieldNameCollection.fields = mFieldNames.data();
}

char const* GridSamplePluginLegacyCreator::getPluginName() const noexcept
{
    return kGridSamplePluginName;
}

char const* GridSamplePluginLegacyCreator::getPluginVersion() const noexcept
{
    return kGridSamplePluginVersion;
}

PluginFieldCollection const* GridSamplePluginLegacyCreator::getFieldNames() noexcept
{
    return &mFieldNameCollection;
}

IPluginV2* GridSamplePluginLegacyCreator::createPlugin(char const* /*name*/, PluginFieldCollection const* fc) noexcept
{
    int32_t alignCorners{0};
    if (!readAlignCorners(fc, alignCorners))
    {
        return nullptr;
    }
    auto* plugin = new (std::nothrow) GridSamplePluginLegacy(alignCorners);
    if (plugin != nullptr)
    {
        plugin->setPluginNamespace(mNamespace.c_str());
    }
    return plugin;
}

IPluginV2* GridSamplePluginLegacyCreator::deserializePlugin(
    char const* /*name*/, void const* serialData, size_t serialLength) noexcept
{
    auto* plugin = new (std::nothrow) GridSamplePluginLegacy(serialData, serialLength);
    if (plugin == nullptr || !plugin->valid())
    {
        logPluginError("DAttnGridSample: corrupt serialized plugin data");
        delete plugin;
        return nullptr;
    }
    plugin->setPluginNamespace(mNamespace.c_str());
    return plugin;
}

void GridSamplePluginLegacyCreator::setPluginNamespace(char const* pluginNamespace) noexcept
{
    mNamespace = pluginNamespace != nullptr ? pluginNamespace : "";
}

char const* GridSamplePluginLegacyCreator::getPluginNamespace() const noexcept
{
    return mNamespace.c_str();
}

} // namespace plugin
} // namespace dattn

#endif // NV_TENSORRT_MAJOR < 10
