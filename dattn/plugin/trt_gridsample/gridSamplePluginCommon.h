// SPDX-FileCopyrightText: Copyright (c) dattn contributors
// SPDX-License-Identifier: AGPL-3.0-or-later
//
// What both TensorRT interfaces of the DAttnGridSample plugin share: the node contract's names,
// attribute parsing, the format rule, the checks of runtime tensors, the enqueue that calls the
// kernel, and the way errors are reported.
#ifndef DATTN_GRID_SAMPLE_PLUGIN_COMMON_H
#define DATTN_GRID_SAMPLE_PLUGIN_COMMON_H

#include "NvInferRuntime.h"
#include "NvInferVersion.h"

#include <cuda_runtime_api.h>
#include <exception>
#include <stdint.h>

#if defined(_MSC_VER)
#define DATTN_PLUGIN_EXPORT __declspec(dllexport)
#else
#define DATTN_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

// TensorRT hands plugin libraries a logger finder from 8.6 on (IPluginRegistry::loadLibrary).
#define DATTN_TRT_HAS_LOGGER_FINDER (NV_TENSORRT_MAJOR > 8 || (NV_TENSORRT_MAJOR == 8 && NV_TENSORRT_MINOR >= 6))

namespace dattn
{
namespace plugin
{

// The node contract; tests/test_plugin_contract.py checks these against dattn/plugin/contract.py
// (OP_TYPE, PLUGIN_VERSION, PLUGIN_NAMESPACE, ALIGN_CORNERS, INPUTS, OUTPUTS).
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

// Why X, grid and Y cannot be sampled (type, format, ranks, Y != (N, C, Ho, Wo), a grid whose last
// dimension is not 2); nullptr when they can. Dimensions of -1 (unknown at build time) pass.
char const* tensorProblem(nvinfer1::PluginTensorDesc const& x, nvinfer1::PluginTensorDesc const& grid,
    nvinfer1::PluginTensorDesc const& y) noexcept;

// Checks enqueue's arguments and runs the kernel; 0 on success, -1 after logging the reason.
int32_t enqueueGridSample(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
    void const* const* inputs, void* const* outputs, int32_t alignCorners, cudaStream_t stream) noexcept;

// Through the logger TensorRT gave the library (8.6+), else TensorRT's global logger, else stderr.
void logPluginError(char const* message) noexcept;

// "DAttnGridSample: <method> failed: <what>", logged without allocating.
void logCaughtException(char const* method, char const* what) noexcept;

// Runs body, which may allocate, inside a noexcept TensorRT method. An exception is logged and
// `failure` returned, as TensorRT's own plugins do, instead of reaching std::terminate.
template <typename Result, typename Body>
Result guardedCall(char const* method, Result failure, Body&& body) noexcept
{
    try
    {
        return body();
    }
    catch (std::exception const& error)
    {
        logCaughtException(method, error.what());
    }
    catch (...)
    {
        logCaughtException(method, "unknown exception");
    }
    return failure;
}

#if DATTN_TRT_HAS_LOGGER_FINDER
// Given by TensorRT when it loads the library through IPluginRegistry::loadLibrary.
void setPluginLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept;
#endif

} // namespace plugin
} // namespace dattn

#endif // DATTN_GRID_SAMPLE_PLUGIN_COMMON_H
