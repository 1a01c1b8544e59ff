// SPDX-FileCopyrightText: Copyright (c) dattn contributors
// SPDX-License-Identifier: AGPL-3.0-or-later
//
// DAttnGridSample as an IPluginV3 (TensorRT 10 and later): bilinear grid sampling, zeros padding.
#ifndef DATTN_GRID_SAMPLE_PLUGIN_H
#define DATTN_GRID_SAMPLE_PLUGIN_H

#include "gridSamplePluginCommon.h"

#if NV_TENSORRT_MAJOR >= 10

namespace dattn
{
namespace plugin
{

// Allocates nothing but itself: clone, attachToContext and createPlugin are the only calls that can fail for memory.
class GridSamplePlugin : public nvinfer1::IPluginV3,
                         public nvinfer1::IPluginV3OneCore,
                         public nvinfer1::IPluginV3OneBuild,
                         public nvinfer1::IPluginV3OneRuntime
{
public:
    explicit GridSamplePlugin(int32_t alignCorners) noexcept;
    GridSamplePlugin(GridSamplePlugin const& other) noexcept;
    GridSamplePlugin& operator=(GridSamplePlugin const&) = delete;
    ~GridSamplePlugin() override = default;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;
    nvinfer1::IPluginV3* clone() noexcept override;

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;

    // IPluginV3OneBuild
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
        nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
        int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
        nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override;
    int32_t getNbOutputs() const noexcept override;
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
        int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

private:
    void exposeField() noexcept;

    int32_t mAlignCorners;
    // What getFieldsToSerialize() hands the engine: align_corners as one INT32, pointing at mAlignCorners.
    nvinfer1::PluginField mField{};
    nvinfer1::PluginFieldCollection mFieldCollection{};
};

class GridSamplePluginCreator : public nvinfer1::IPluginCreatorV3One
{
public:
    GridSamplePluginCreator() noexcept;
    ~GridSamplePluginCreator() override = default;

    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    // Same path for both phases: the build gets the ONNX attributes, the runtime the serialized fields.
    nvinfer1::IPluginV3* createPlugin(
        char const* name, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase phase) noexcept override;

private:
    nvinfer1::PluginField mFieldName{};
    nvinfer1::PluginFieldCollection mFieldNameCollection{};
};

} // namespace plugin
} // namespace dattn

#endif // NV_TENSORRT_MAJOR >= 10
#endif // DATTN_GRID_SAMPLE_PLUGIN_H
