// SPDX-FileCopyrightText: Copyright (c) dattn contributors
// SPDX-License-Identifier: AGPL-3.0-or-later
//
// DAttnGridSample as an IPluginV2DynamicExt (TensorRT 8.x): bilinear grid sampling, zeros padding.
#ifndef DATTN_GRID_SAMPLE_PLUGIN_LEGACY_H
#define DATTN_GRID_SAMPLE_PLUGIN_LEGACY_H

#include "gridSamplePluginCommon.h"

#if NV_TENSORRT_MAJOR < 10

#include <string>

namespace dattn
{
namespace plugin
{

class GridSamplePluginLegacy : public nvinfer1::IPluginV2DynamicExt
{
public:
    // Both may throw (the namespace is a std::string): only ever called inside guardedCall.
    GridSamplePluginLegacy(int32_t alignCorners, char const* pluginNamespace);
    // From the bytes written by serialize(); check valid() afterwards.
    GridSamplePluginLegacy(void const* data, size_t length, char const* pluginNamespace);
    bool valid() const noexcept;

    // IPluginV2DynamicExt
    nvinfer1::IPluginV2DynamicExt* clone() const noexcept override;
    nvinfer1::DimsExprs getOutputDimensions(int32_t outputIndex, nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
        nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(
        int32_t pos, nvinfer1::PluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept override;
    void configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    size_t getWorkspaceSize(nvinfer1::PluginTensorDesc const* inputs, int32_t nbInputs,
        nvinfer1::PluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;

    // IPluginV2Ext
    nvinfer1::DataType getOutputDataType(
        int32_t index, nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;

    // IPluginV2
    char const* getPluginType() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    int32_t getNbOutputs() const noexcept override;
    int32_t initialize() noexcept override;
    void terminate() noexcept override;
    size_t getSerializationSize() const noexcept override;
    void serialize(void* buffer) const noexcept override;
    void destroy() noexcept override;
    void setPluginNamespace(char const* pluginNamespace) noexcept override;
    char const* getPluginNamespace() const noexcept override;

private:
    int32_t mAlignCorners{-1}; // -1 marks a failed deserialization
    std::string mNamespace;
};

class GridSamplePluginLegacyCreator : public nvinfer1::IPluginCreator
{
public:
    GridSamplePluginLegacyCreator();

    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    nvinfer1::IPluginV2* createPlugin(char const* name, nvinfer1::PluginFieldCollection const* fc) noexcept override;
    nvinfer1::IPluginV2* deserializePlugin(
        char const* name, void const* serialData, size_t serialLength) noexcept override;
    void setPluginNamespace(char const* pluginNamespace) noexcept override;
    char const* getPluginNamespace() const noexcept override;

private:
    nvinfer1::PluginField mFieldName{};
    nvinfer1::PluginFieldCollection mFieldNameCollection{};
    std::string mNamespace{kGridSamplePluginNamespace}; // short enough never to allocate
};

} // namespace plugin
} // namespace dattn

#endif // NV_TENSORRT_MAJOR < 10
#endif // DATTN_GRID_SAMPLE_PLUGIN_LEGACY_H
