#include "gridSamplePlugin.h"

#if NV_TENSORRT_MAJOR >= 10

#include <new>

namespace dattn
{
namespace plugin
{

using namespace nvinfer1;

GridSamplePlugin::GridSamplePlugin(int32_t alignCorners)
    : mAlignCorners(alignCorners)
{
    exposeFields();
}

GridSamplePlugin::GridSamplePlugin(GridSamplePlugin const& other)
    : IPluginV3(other)
    , IPluginV3OneCore(other)
    , IPluginV3OneBuild(other)
    , IPluginV3OneRuntime(other)
    , mAlignCorners(other.mAlignCorners)
{
    exposeFields(); // the copy must point at its own storage, not at other's
}

void GridSamplePlugin::exposeFields()
{
    mFields.clear();
    mFields.emplace_back(kAlignCornersField, &mAlignCorners, PluginFieldType::kINT32, 1);
    mFieldCollection.nbFields = static_cast<int32_t>(mFields.size());
    mFieldCollection.fields = mFields.data();
}

IPluginCapability* GridSamplePlugin::getCapabilityInterface(PluginCapabilityType type) noexcept
{
    switch (type)
    {
    case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
    case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
    case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
    }
    return nullptr;
}

IPluginV3* GridSamplePlugin::clone() noexcept
{
    return new (std::nothrow) GridSamplePlugin(*this);
}

char const* GridSamplePlugin::getPluginName() const noexcept
{
    return kGridSamplePluginName;
}

char const* GridSamplePlugin::getPluginVersion() const noexcept
{
    return kGridSamplePluginVersion;
}

char const* GridSamplePlugin::getPluginNamespace() const noexcept
{
    return kGridSamplePluginNamespace;
}

int32_t GridSamplePlugin::configurePlugin(
    DynamicPluginTensorDesc const* /*in*/, int32_t nbInputs, DynamicPluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept
{
    return nbInputs == kNbInputs && nbOutputs == kNbOutputs ? 0 : -1;
}

int32_t GridSamplePlugin::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    if (outputTypes == nullptr || inputTypes == nullptr || nbOutputs != kNbOutputs || nbInputs != kNbInputs)
    {
        return -1;
    }
    outputTypes[0] = inputTypes[kInputIndex];
    return 0;
}

int32_t GridSamplePlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* /*shapeInputs*/,
    int32_t /*nbShapeInputs*/, DimsExprs* outputs, int32_t nbOutputs, IExprBuilder& /*exprBuilder*/) noexcept
{
    if (inputs == nullptr || outputs == nullptr || nbInputs != kNbInputs || nbOutputs != kNbOutputs
        || inputs[kInputIndex].nbDims != 4 || inputs[kGridIndex].nbDims != 4)
    {
        logPluginError("DAttnGridSample: expects X (N,C,H,W) and grid (N,Ho,Wo,2)");
        return -1;
    }
    // Y = (N, C) of X followed by (Ho, Wo) of the grid.
    outputs[0].nbDims = 4;
    outputs[0].d[0] = inputs[kInputIndex].d[0];
    outputs[0].d[1] = inputs[kInputIndex].d[1];
    outputs[0].d[2] = inputs[kGridIndex].d[1];
    outputs[0].d[3] = inputs[kGridIndex].d[2];
    return 0;
}

bool GridSamplePlugin::supportsFormatCombination(
    int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    if (inOut == nullptr || nbInputs != kNbInputs || nbOutputs != kNbOutputs || pos < 0 || pos >= nbInputs + nbOutputs)
    {
        return false;
    }
    PluginTensorDesc descs[kNbInputs + kNbOutputs];
    for (int32_t i = 0; i <= pos; ++i)
    {
        descs[i] = inOut[i].desc;
    }
    return isSupportedFormat(pos, descs, nbInputs, nbOutputs);
}

int32_t GridSamplePlugin::getNbOutputs() const noexcept
{
    return kNbOutputs;
}

int32_t GridSamplePlugin::onShapeChange(
    PluginTensorDesc const* /*in*/, int32_t nbInputs, PluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept
{
    return nbInputs == kNbInputs && nbOutputs == kNbOutputs ? 0 : -1;
}

int32_t GridSamplePlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* outputDesc,
    void const* const* inputs, void* const* outputs, void* /*workspace*/, cudaStream_t stream) noexcept
{
    return enqueueGridSample(inputDesc, outputDesc, inputs, outputs, mAlignCorners, stream);
}

IPluginV3* GridSamplePlugin::attachToContext(IPluginResourceContext* /*context*/) noexcept
{
    return clone(); // no per-context resources
}

PluginFieldCollection const* GridSamplePlugin::getFieldsToSerialize() noexcept
{
    return &mFieldCollection;
}

GridSamplePluginCreator::GridSamplePluginCreator()
{
    mFieldNames.emplace_back(kAlignCornersField, nullptr, PluginFieldType::kINT32, 1);
    mFieldNameCollection.nbFields = static_cast<int32_t>(mFieldNames.size());
    mFieldNameCollection.fields = mFieldNames.data();
}

char const* GridSamplePluginCreator::getPluginName() const noexcept
{
    return kGridSamplePluginName;
}

char const* GridSamplePluginCreator::getPluginVersion() const noexcept
{
    return kGridSamplePluginVersion;
}

char const* GridSamplePluginCreator::getPluginNamespace() const noexcept
{
    return kGridSamplePluginNamespace;
}

PluginFieldCollection const* GridSamplePluginCreator::getFieldNames() noexcept
{
    return &mFieldNameCollection;
}

IPluginV3* GridSamplePluginCreator::createPlugin(
    char const* /*name*/, PluginFieldCollection const* fc, TensorRTPhase /*phase*/) noexcept
{
    int32_t alignCorners{0};
    if (!readAlignCorners(fc, alignCorners))
    {
        return nullptr;
    }
    return new (std::nothrow) GridSamplePlugin(alignCorners);
}

} // namespace plugin
} // namespace dattn

#endif // NV_TENSORRT_MAJOR >= 10
