// SPDX-FileCopyrightText: Copyright (c) dattn contributors
// SPDX-License-Identifier: AGPL-3.0-or-later
//
// How TensorRT finds the DAttnGridSample creator in this library, and what the library says it was built for:
// - static registration when the library is dlopen'ed (trtexec --plugins / --staticPlugins, ctypes.CDLL),
//   where a TensorRT plugin registry is in reach;
// - the getCreators (10+) / getPluginCreators (8.6) entry points for IPluginRegistry::loadLibrary
//   (trtexec --dynamicPlugins, TensorRT for RTX), which fails on creators already registered, hence the CMake switch;
// - dattnTrtPluginBuildInfo, which dattn/plugin/library.py reads from the file before any TensorRT sees the library.
#include "gridSamplePlugin.h"
#include "gridSamplePluginLegacy.h"

#ifndef DATTN_STATIC_REGISTRATION
#define DATTN_STATIC_REGISTRATION 1
#endif

#if defined(__GNUC__)
// Weak, so the library loads where no libnvinfer is in reach (TensorRT for RTX registers it through
// getCreators) instead of being refused for an undefined symbol; static registration is then skipped.
#pragma weak getPluginRegistry
#endif

#define DATTN_STRINGIFY_VALUE(x) #x
#define DATTN_STRINGIFY(x) DATTN_STRINGIFY_VALUE(x)
#if NV_TENSORRT_MAJOR >= 10
#define DATTN_PLUGIN_INTERFACE "IPluginV3"
#else
#define DATTN_PLUGIN_INTERFACE "IPluginV2DynamicExt"
#endif

// The TensorRT headers the library was compiled against and the interface that chose. A plain string in the
// file, so it can be read without loading the library (a library built for another TensorRT must not reach
// that TensorRT's registry), and an exported symbol for ctypes and C++ loaders.
extern "C" DATTN_PLUGIN_EXPORT char const dattnTrtPluginBuildInfo[]
    = "dattn-trt-plugin-build tensorrt=" DATTN_STRINGIFY(NV_TENSORRT_MAJOR) "." DATTN_STRINGIFY(
        NV_TENSORRT_MINOR) "." DATTN_STRINGIFY(NV_TENSORRT_PATCH) " interface=" DATTN_PLUGIN_INTERFACE;

namespace dattn
{
namespace plugin
{
namespace
{

#if NV_TENSORRT_MAJOR >= 10
using Creator = GridSamplePluginCreator;
#else
using Creator = GridSamplePluginLegacyCreator;
#endif

Creator& gridSampleCreator() noexcept
{
    static Creator creator;
    return creator;
}

#if DATTN_STATIC_REGISTRATION
// Registers under our namespace explicitly: REGISTER_TENSORRT_PLUGIN would pass "" as the namespace.
struct StaticRegistration
{
    StaticRegistration() noexcept
    {
        if (&getPluginRegistry == nullptr)
        {
            return; // no TensorRT in reach: IPluginRegistry::loadLibrary will ask getCreators instead
        }
        nvinfer1::IPluginRegistry* registry = getPluginRegistry();
        if (registry == nullptr || !registry->registerCreator(gridSampleCreator(), kGridSamplePluginNamespace))
        {
            logPluginError("DAttnGridSample: could not register the plugin creator (already registered?)");
        }
    }
};
StaticRegistration const gStaticRegistration{};
#endif

} // namespace
} // namespace plugin
} // namespace dattn

#if DATTN_TRT_HAS_LOGGER_FINDER
extern "C" DATTN_PLUGIN_EXPORT void setLoggerFinder(nvinfer1::ILoggerFinder* finder)
{
    dattn::plugin::setPluginLoggerFinder(finder);
}
#endif

#if NV_TENSORRT_MAJOR >= 10
extern "C" DATTN_PLUGIN_EXPORT nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
{
    static nvinfer1::IPluginCreatorInterface* creators[] = {&dattn::plugin::gridSampleCreator()};
    nbCreators = 1;
    return creators;
}
#elif DATTN_TRT_HAS_LOGGER_FINDER
extern "C" DATTN_PLUGIN_EXPORT nvinfer1::IPluginCreator* const* getPluginCreators(int32_t& nbCreators)
{
    static nvinfer1::IPluginCreator* creators[] = {&dattn::plugin::gridSampleCreator()};
    nbCreators = 1;
    return creators;
}
#endif
