// SPDX-FileCopyrightText: Copyright (c) dattn contributors
// SPDX-License-Identifier: AGPL-3.0-or-later
#include "gridSamplePluginLegacy.h"

#if NV_TENSORRT_MAJOR < 10

#include <cstring>
#include <memory>

namespace dattn
{
namespace plugin
{

using namespace nvinfer1;

namespace
{
// Serialized form: align_corners as one int32 in native byte order (little-endian on x86-64 and aarch64).
constexpr size_t kSerializationSize = sizeof(int32_t);

// A constant dimension that differs from `expected` (symbolic ones are checked by TensorRT at run time).
bool constantOtherThan(IDimensionExpr const* dim, int32_t expected) noexcept
{
    return dim != nullptr && dim->isConstant() && dim->getConstantValue() != expected;
}
} // namespace

GridSamplePluginLegacy::GridSamplePluginLegacy(int32_t alignCorners, char const* pluginNamespace)
    : mAlignCorners(alignCorners)
    , mNamespace(pluginNamespace != nullptr ? pluginNamespace : "")
{
}

GridSamplePluginLegacy::GridSamplePluginLegacy(void const* data, size_t length, char const* pluginNamespace)
    : mNamespace(pluginNamespace != nullptr ? pluginNamespace : "")
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
    return guardedCall("clone", static_cast<IPluginV2DynamicExt*>(nullptr),
        [this] { return new GridSamplePluginLegacy(mAlignCorners, mNamespace.c_str()); });
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
    DimsExprs const& x = inputs[kInputIndex];
    DimsExprs const& grid = inputs[kGridIndex];
    if (constantOtherThan(grid.d[3], 2)
        || (x.d[0] != nullptr && x.d[0]->isConstant() && constantOtherThan(grid.d[0], x.d[0]->getConstantValue())))
    {
        logPluginError("DAttnGridSample: grid must be (N,Ho,Wo,2) with the N of X");
        output.nbDims = -1;
        return output;
    }
    // Y = (N, C) of X followed by (Ho, Wo) of the grid.
    output.nbDims = 4;
    output.d[0] = x.d[0];
    output.d[1] = x.d[1];
    output.d[2] = grid.d[1];
    output.d[3] = grid.d[2];
    return output;
}

bool GridSamplePluginLegacy::supportsFormatCombination(
    int32_t pos, PluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    return isSupportedFormat(pos, inOut, nbInputs, nbOutputs);
}

void GridSamplePluginLegacy::configurePlugin(
    DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    // No way to refuse here: TensorRT 8.x only learns of a problem from the log (and enqueue refuses).
    if (in == nullptr || out == nullptr || nbInputs != kNbInputs || nbOutputs != kNbOutputs)
    {
        logPluginError("DAttnGridSample: configurePlugin expects 2 inputs (X, grid) and 1 output (Y)");
    }
    else if (char const* problem = tensorProblem(in[kInputIndex].desc, in[kGridIndex].desc, out[0].desc))
    {
        logPluginError(problem);
    }
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
    int32_t index, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    if (index != 0 || inputTypes == nullptr || nbInputs != kNbInputs)
    {
        logPluginError("DAttnGridSample: getOutputDataType expects output 0 of 2 inputs (X, grid)");
        return DataType::kFLOAT;
    }
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
    if (buffer != nullptr)
    {
        std::memcpy(buffer, &mAlignCorners, sizeof(mAlignCorners));
    }
}

void GridSamplePluginLegacy::destroy() noexcept
{
    delete this;
}

void GridSamplePluginLegacy::setPluginNamespace(char const* pluginNamespace) noexcept
{
    // A failed assignment leaves the namespace as it was.
    guardedCall("setPluginNamespace", false, [this, pluginNamespace] {
        mNamespace = pluginNamespace != nullptr ? pluginNamespace : "";
        return true;
    });
}

char const* GridSamplePluginLegacy::getPluginNamespace() const noexcept
{
    return mNamespace.c_str();
}

GridSamplePluginLegacyCreator::GridSamplePluginLegacyCreator()
    : mFieldName(kAlignCornersField, nullptr, PluginFieldType::kINT32, 1)
{
    mFieldNameCollection.nbFields = 1;
    mFieldNameCollection.fields = &mFieldName;
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
    return guardedCall("createPlugin", static_cast<IPluginV2*>(nullptr),
        [this, alignCorners] { return new GridSamplePluginLegacy(alignCorners, mNamespace.c_str()); });
}

IPluginV2* GridSamplePluginLegacyCreator::deserializePlugin(
    char const* /*name*/, void const* serialData, size_t serialLength) noexcept
{
    return guardedCall("deserializePlugin", static_cast<IPluginV2*>(nullptr), [&]() -> IPluginV2* {
        std::unique_ptr<GridSamplePluginLegacy> plugin(
            new GridSamplePluginLegacy(serialData, serialLength, mNamespace.c_str()));
        if (!plugin->valid())
        {
            logPluginError("DAttnGridSample: corrupt serialized plugin data");
            return nullptr;
        }
        return plugin.release();
    });
}

void GridSamplePluginLegacyCreator::setPluginNamespace(char const* pluginNamespace) noexcept
{
    guardedCall("setPluginNamespace", false, [this, pluginNamespace] {
        mNamespace = pluginNamespace != nullptr ? pluginNamespace : "";
        return true;
    });
}

char const* GridSamplePluginLegacyCreator::getPluginNamespace() const noexcept
{
    return mNamespace.c_str();
}

} // namespace plugin
} // namespace dattn

#endif // NV_TENSORRT_MAJOR < 10
