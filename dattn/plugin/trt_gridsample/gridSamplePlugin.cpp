// SPDX-FileCopyrightText: Copyright (c) dattn contributors
// SPDX-License-Identifier: AGPL-3.0-or-later
#include "gridSamplePlugin.h"

#if NV_TENSORRT_MAJOR >= 10

namespace dattn
{
namespace plugin
{

using namespace nvinfer1;

namespace
{

// A constant dimension that differs from `expected` (symbolic ones are checked by TensorRT at run time).
bool constantOtherThan(IDimensionExpr const* dim, int64_t expected) noexcept
{
    return dim != nullptr && dim->isConstant() && dim->getConstantValue() != expected;
}

} // namespace

GridSamplePlugin::GridSamplePlugin(int32_t alignCorners) noexcept
    : mAlignCorners(alignCorners)
{
    exposeField();
}

GridSamplePlugin::GridSamplePlugin(GridSamplePlugin const& other) noexcept
    : IPluginV3(other)
    , IPluginV3OneCore(other)
    , IPluginV3OneBuild(other)
    , IPluginV3OneRuntime(other)
    , mAlignCorners(other.mAlignCorners)
{
    exposeField(); // the copy must point at its own storage, not at other's
}

void GridSamplePlugin::exposeField() noexcept
{
    mField = PluginField(kAlignCornersField, &mAlignCorners, PluginFieldType::kINT32, 1);
    mFieldCollection.nbFields = 1;
    mFieldCollection.fields = &mField;
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
    return guardedCall("clone", static_cast<IPluginV3*>(nullptr), [this] { return new GridSamplePlugin(*this); });
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
    DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    if (in == nullptr || out == nullptr || nbInputs != kNbInputs || nbOutputs != kNbOutputs)
    {
        logPluginError("DAttnGridSample: configurePlugin expects 2 inputs (X, grid) and 1 output (Y)");
        return -1;
    }
    if (char const* problem = tensorProblem(in[kInputIndex].desc, in[kGridIndex].desc, out[0].desc))
    {
        logPluginError(problem);
        return -1;
    }
    return 0;
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
    DimsExprs const& x = inputs[kInputIndex];
    DimsExprs const& grid = inputs[kGridIndex];
    if (constantOtherThan(grid.d[3], 2)
        || (x.d[0] != nullptr && x.d[0]->isConstant() && constantOtherThan(grid.d[0], x.d[0]->getConstantValue())))
    {
        logPluginError("DAttnGridSample: grid must be (N,Ho,Wo,2) with the N of X");
        return -1;
    }
    // Y = (N, C) of X followed by (Ho, Wo) of the grid.
    outputs[0].nbDims = 4;
    outputs[0].d[0] = x.d[0];
    outputs[0].d[1] = x.d[1];
    outputs[0].d[2] = grid.d[1];
    outputs[0].d[3] = grid.d[2];
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

size_t GridSamplePlugin::getWorkspaceSize(DynamicPluginTensorDesc const* /*inputs*/, int32_t /*nbInputs*/,
    DynamicPluginTensorDesc const* /*outputs*/, int32_t /*nbOutputs*/) const noexcept
{
    return 0; // the kernel writes Y directly
}

int32_t GridSamplePlugin::onShapeChange(
    PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    if (in == nullptr || out == nullptr || nbInputs != kNbInputs || nbOutputs != kNbOutputs)
    {
        logPluginError("DAttnGridSample: onShapeChange expects 2 inputs (X, grid) and 1 output (Y)");
        return -1;
    }
    if (char const* problem = tensorProblem(in[kInputIndex], in[kGridIndex], out[0]))
    {
        logPluginError(problem);
        return -1;
    }
    return 0;
}

int32_t GridSamplePlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* outputDesc,
    void const* const* inputs, void* const* outputs, void* /*workspace*/, cudaStream_t stream) noexcept
{
    return enqueueGridSample(inputDesc, outputDesc, inputs, outputs, mAlignCorners, stream);
}

IPluginV3* GridSamplePlugin::attachToContext(IPluginResourceContext* /*context*/) noexcept
{
    // No per-context resources: a copy serves.
    return guardedCall(
        "attachToContext", static_cast<IPluginV3*>(nullptr), [this] { return new GridSamplePlugin(*this); });
}

PluginFieldCollection const* GridSamplePlugin::getFieldsToSerialize() noexcept
{
    return &mFieldCollection;
}

GridSamplePluginCreator::GridSamplePluginCreator() noexcept
    : mFieldName(kAlignCornersField, nullptr, PluginFieldType::kINT32, 1)
{
    mFieldNameCollection.nbFields = 1;
    mFieldNameCollection.fields = &mFieldName;
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
    return guardedCall(
        "createPlugin", static_cast<IPluginV3*>(nullptr), [alignCorners] { return new GridSamplePlugin(alignCorners); });
}

} // namespace plugin
} // namespace dattn

#endif // NV_TENSORRT_MAJOR >= 10
