// What both TensorRT interfaces of the DAttnGridSample plugin share: the node contract's names,
// attribute parsing, the format rule, and the enqueue that calls the kernel.
#ifndef DATTN_GRID_SAMPLE_PLUGIN_COMMON_H
#define DATTN_GRID_SAMPLE_PLUGIN_COMMON_H

#include "NvInferRuntime.h"
#include "NvInferVersion.h"

#include <cuda_runtime_api.h>
#include <stdint.h>

#if defined(_MSC_VER)
#define DATTN_PLUGIN_EXPORT __declspec(dllexport)
#else
#define DATTN_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

namespace dattn
{
namespace plugin
{

// Must equal dattn/plugin/contract.py: OP_TYPE, PLUGIN_VERSION, PLUGIN_NAMESPACE (== DOMAIN), ALIGN_CORNERS.
constexpr char const* kGridSamplePluginName = "DAttnGridSample";
constexpr char const* kGridSamplePluginVersion = "1";
constexpr char const* kGridSamplePluginNamespace = "dattn";
constexpr char const* kAlignCornersField = "align_corners";

constexpr int32_t kInputIndex = 0; // X (N, C, H, W)
constexpr int32_t kGridIndex = 1;  // grid (N, Ho, Wo, 2), (x, y) order
constexpr int32_t kNbInputs = 2;
constexpr int32_t kNbOutputs = 1; // Y (N, C, Ho, Wo)

// Reads align_corners (0 or 1) from a field collection; false when it is missing or malformed.
bool readAlignCorners(nvinfer1::PluginFieldCollection const* fields, int32_t& alignCorners) noexcept;

// LINEAR fp32 or fp16, every tensor the type of X.
bool isSupportedFormat(int32_t pos, nvinfer1::PluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept;

// Runs the kernel for runtime descriptors; 0 on success, -1 after logging the reason.
int32_t enqueueGridSample(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
    void const* const* inputs, void* const* outputs, int32_t alignCorners, cudaStream_t stream) noexcept;

void logPluginError(char const* message) noexcept;

#if NV_TENSORRT_MAJOR > 8 || (NV_TENSORRT_MAJOR == 8 && NV_TENSORRT_MINOR >= 6)
// Given by TensorRT when it loads the library through IPluginRegistry::loadLibrary.
void setPluginLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept;
#endif

} // namespace plugin
} // namespace dattn

#endif // DATTN_GRID_SAMPLE_PLUGIN_COMMON_H
