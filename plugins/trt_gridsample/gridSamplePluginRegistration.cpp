// How TensorRT finds the DAttnGridSample creator in this library:
// - static registration when the library is dlopen'ed (trtexec --plugins / --staticPlugins, ctypes.CDLL);
// - the getCreators (10+) / getPluginCreators (8.6) entry points for IPluginRegistry::loadLibrary
//   (trtexec --dynamicPlugins), which fails on creators already registered, hence the CMake switch.
#include "gridSamplePlugin.h"
#include "gridSamplePluginLegacy.h"

#ifndef DATTN_STATIC_REGISTRATION
#define DATTN_STATIC_REGISTRATION 1
#endif

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

Creator& gridSampleCreator()
{
    static Creator creator;
    return creator;
}

#if DATTN_STATIC_REGISTRATION
// Registers under our namespace explicitly: REGISTER_TENSORRT_PLUGIN would pass "" as the namespace.
struct StaticRegistration
{
    StaticRegistration()
    {
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

#if NV_TENSORRT_MAJOR > 8 || (NV_TENSORRT_MAJOR == 8 && NV_TENSORRT_MINOR >= 6)
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
#elif NV_TENSORRT_MAJOR == 8 && NV_TENSORRT_MINOR >= 6
extern "C" DATTN_PLUGIN_EXPORT nvinfer1::IPluginCreator* const* getPluginCreators(int32_t& nbCreators)
{
    static nvinfer1::IPluginCreator* creators[] = {&dattn::plugin::gridSampleCreator()};
    nbCreators = 1;
    return creators;
}
#endif
