// Host-only checks of the DAttnGridSample plugin classes, built against one set of TensorRT headers
// without libnvinfer and run without a GPU (tests/test_trt_plugin_roundtrip.py builds and runs it).
//
// Checks, each printed as one tab-separated line "CHECK <group> <name> <PASS|FAIL> <detail>":
//   identity   the creator's (and the plugins') name / version / namespace, the creator's field names,
//              and the library entry point TensorRT's loadLibrary uses (getPluginCreators 8.6, getCreators 10+);
//   roundtrip  align_corners 0 and 1 through creation, serialization and the runtime re-creation
//              (8.x: serialize / deserializePlugin; 10+: getFieldsToSerialize / createPlugin(kRUNTIME)),
//              plus clone and the rejection of bad attributes and corrupt bytes;
//   formats    supportsFormatCombination over every position x type x format, with TensorRT's
//              convention that the positions before the asked one hold already accepted descriptors;
//   shapes     getOutputDimensions (8.x) / getOutputShapes (10+) through a fake IExprBuilder, and the
//              output data type.
// The process exits 0 when every check passed.
//
// Build (the test does this): g++ -std=c++14 -DDATTN_STATIC_REGISTRATION=0 -I<plugin dir> -isystem <trt include>
//   -isystem <cuda include> this file ../gridSamplePluginCommon.cpp ../gridSamplePlugin.cpp
//   ../gridSamplePluginLegacy.cpp ../gridSamplePluginRegistration.cpp gridSampleKernel.o -lcudart_static -ldl -lpthread -lrt
// The registration file is built with static registration off (a supported CMake option), so it does not
// reference getPluginRegistry(); nothing else of libnvinfer is referenced. enqueue is never called.

#include "gridSamplePlugin.h"
#include "gridSamplePluginCommon.h"
#include "gridSamplePluginLegacy.h"

#include "NvInferRuntime.h"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#if NV_TENSORRT_MAJOR >= 10
extern "C" nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators);
#elif NV_TENSORRT_MAJOR == 8 && NV_TENSORRT_MINOR >= 6
extern "C" nvinfer1::IPluginCreator* const* getPluginCreators(int32_t& nbCreators);
#endif

namespace
{

using namespace nvinfer1;

int gFailures = 0;
int gChecks = 0;

void report(char const* group, std::string const& name, bool ok, std::string const& detail = "")
{
    ++gChecks;
    if (!ok)
    {
        ++gFailures;
    }
    std::printf("CHECK\t%s\t%s\t%s\t%s\n", group, name.c_str(), ok ? "PASS" : "FAIL", detail.c_str());
    std::fflush(stdout);
}

bool sameString(char const* actual, char const* expected)
{
    return actual != nullptr && std::strcmp(actual, expected) == 0;
}

std::string quoted(char const* text)
{
    return text == nullptr ? std::string("(null)") : "\"" + std::string(text) + "\"";
}

// ---------------------------------------------------------------------------------------------
// A fake expression builder. IDimensionExpr and IExprBuilder are thin wrappers around the
// apiv::VDimensionExpr / apiv::VExprBuilder implementations that libnvinfer normally supplies;
// here they are implemented by hand: constants fold, anything involving a symbolic dimension
// becomes a new symbolic dimension.
// ---------------------------------------------------------------------------------------------

#if NV_TENSORRT_MAJOR >= 10
using DimValue = int64_t;
#else
using DimValue = int32_t;
#endif

class FakeDimensionImpl : public apiv::VDimensionExpr
{
public:
    FakeDimensionImpl(bool constant, DimValue value)
        : mConstant(constant)
        , mValue(value)
    {
    }
    bool isConstant() const override
    {
        return mConstant;
    }
    DimValue getConstantValue() const override
    {
        return mConstant ? mValue : -1;
    }
#if NV_TENSORRT_MAJOR >= 10
    bool isSizeTensor() const override
    {
        return false;
    }
#endif

private:
    bool mConstant;
    DimValue mValue;
};

class FakeDimension : public IDimensionExpr
{
public:
    FakeDimension(bool constant, DimValue value)
        : mOwnImpl(constant, value)
    {
        mImpl = &mOwnImpl;
    }
    ~FakeDimension() noexcept override = default;

private:
    FakeDimensionImpl mOwnImpl;
};

class FakeExprBuilderImpl : public apiv::VExprBuilder
{
public:
    IDimensionExpr const* constant(DimValue value) override
    {
        ++mCalls;
        return make(true, value);
    }
    IDimensionExpr const* operation(
        DimensionOperation op, IDimensionExpr const& first, IDimensionExpr const& second) override
    {
        ++mCalls;
        if (!first.isConstant() || !second.isConstant())
        {
            return make(false, 0);
        }
        DimValue const a = first.getConstantValue();
        DimValue const b = second.getConstantValue();
        switch (op)
        {
        case DimensionOperation::kSUM: return make(true, a + b);
        case DimensionOperation::kPROD: return make(true, a * b);
        case DimensionOperation::kMAX: return make(true, a > b ? a : b);
        case DimensionOperation::kMIN: return make(true, a < b ? a : b);
        case DimensionOperation::kSUB: return make(true, a - b);
        case DimensionOperation::kEQUAL: return make(true, a == b ? 1 : 0);
        case DimensionOperation::kLESS: return make(true, a < b ? 1 : 0);
        case DimensionOperation::kFLOOR_DIV:
            return b == 0 ? make(false, 0) : make(true, (a / b) - ((a % b != 0 && ((a < 0) != (b < 0))) ? 1 : 0));
        case DimensionOperation::kCEIL_DIV:
            return b == 0 ? make(false, 0) : make(true, (a / b) + ((a % b != 0 && ((a < 0) == (b < 0))) ? 1 : 0));
        }
        return make(false, 0);
    }
#if NV_TENSORRT_MAJOR >= 10
    IDimensionExpr const* declareSizeTensor(int32_t, IDimensionExpr const&, IDimensionExpr const&) override
    {
        ++mCalls;
        return make(false, 0);
    }
#endif

    // Dimensions handed to the plugin as inputs also live here.
    IDimensionExpr const* make(bool constant, DimValue value)
    {
        mPool.emplace_back(new FakeDimension(constant, value));
        return mPool.back().get();
    }
    int calls() const
    {
        return mCalls;
    }

private:
    std::vector<std::unique_ptr<FakeDimension>> mPool;
    int mCalls{0};
};

class FakeExprBuilder : public IExprBuilder
{
public:
    explicit FakeExprBuilder(FakeExprBuilderImpl& impl)
    {
        mImpl = &impl;
    }
    ~FakeExprBuilder() noexcept override = default;
};

// ---------------------------------------------------------------------------------------------
// Attributes as the ONNX parser hands them over (align_corners plus the two strings the 8.x parser reads).
// ---------------------------------------------------------------------------------------------

struct Attributes
{
    explicit Attributes(int32_t alignCorners, bool withAlignCorners = true)
        : value(alignCorners)
    {
        fields.emplace_back("plugin_version", "1", PluginFieldType::kCHAR, 1);
        if (withAlignCorners)
        {
            fields.emplace_back("align_corners", &value, PluginFieldType::kINT32, 1);
        }
        fields.emplace_back("plugin_namespace", "dattn", PluginFieldType::kCHAR, 5);
        collection.nbFields = static_cast<int32_t>(fields.size());
        collection.fields = fields.data();
    }
    Attributes(Attributes const&) = delete;
    Attributes& operator=(Attributes const&) = delete;

    int32_t value;
    std::vector<PluginField> fields;
    PluginFieldCollection collection{};
};

bool fieldNamesAreAlignCornersOnly(PluginFieldCollection const* names, std::string& detail)
{
    if (names == nullptr)
    {
        detail = "getFieldNames() returned null";
        return false;
    }
    std::ostringstream out;
    out << names->nbFields << " field(s):";
    for (int32_t i = 0; i < names->nbFields; ++i)
    {
        out << " " << quoted(names->fields[i].name) << "/type " << static_cast<int32_t>(names->fields[i].type)
            << "/len " << names->fields[i].length;
    }
    detail = out.str();
    return names->nbFields == 1 && sameString(names->fields[0].name, "align_corners")
        && names->fields[0].type == PluginFieldType::kINT32 && names->fields[0].length == 1;
}

// ---------------------------------------------------------------------------------------------
// supportsFormatCombination, common to both interfaces through a query callback on PluginTensorDesc[3].
// ---------------------------------------------------------------------------------------------

struct NamedType
{
    DataType type;
    char const* name;
};
struct NamedFormat
{
    TensorFormat format;
    char const* name;
};

std::vector<NamedType> const kTypes{{DataType::kFLOAT, "fp32"}, {DataType::kHALF, "fp16"}, {DataType::kINT8, "int8"},
    {DataType::kINT32, "int32"}
#if NV_TENSORRT_MAJOR >= 10
    ,
    {DataType::kBF16, "bf16"}
#endif
};
std::vector<NamedFormat> const kFormats{
    {TensorFormat::kLINEAR, "LINEAR"}, {TensorFormat::kCHW32, "CHW32"}, {TensorFormat::kHWC8, "HWC8"}};

struct Combo
{
    int type;
    int format;
};

bool specAccepts(int32_t pos, Combo const* combo)
{
    DataType const type = kTypes[combo[pos].type].type;
    bool const floating = type == DataType::kFLOAT || type == DataType::kHALF;
    bool const linear = kFormats[combo[pos].format].format == TensorFormat::kLINEAR;
    bool const sameAsX = pos == 0 || combo[pos].type == combo[0].type;
    return linear && floating && sameAsX;
}

std::string describe(Combo const* combo)
{
    std::ostringstream out;
    for (int i = 0; i < 3; ++i)
    {
        out << (i == 0 ? "" : ",") << kTypes[combo[i].type].name << "/" << kFormats[combo[i].format].name;
    }
    return out.str();
}

void fillDesc(PluginTensorDesc& desc, Combo const& combo)
{
    desc = PluginTensorDesc{};
    desc.type = kTypes[combo.type].type;
    desc.format = kFormats[combo.format].format;
    desc.dims.nbDims = 4;
    for (int i = 0; i < 4; ++i)
    {
        desc.dims.d[i] = 2;
    }
    desc.scale = 1.0F;
}

template <typename Query>
void checkFormats(Query query)
{
    int const nbChoices = static_cast<int>(kTypes.size() * kFormats.size());
    for (int32_t pos = 0; pos < 3; ++pos)
    {
        int asked = 0;
        int accepted = 0;
        std::vector<std::string> mismatches;
        for (int c0 = 0; c0 < nbChoices; ++c0)
            for (int c1 = 0; c1 < nbChoices; ++c1)
                for (int c2 = 0; c2 < nbChoices; ++c2)
                {
                    int const choice[3] = {c0, c1, c2};
                    Combo combo[3];
                    for (int i = 0; i < 3; ++i)
                    {
                        combo[i] = Combo{choice[i] / static_cast<int>(kFormats.size()),
                            choice[i] % static_cast<int>(kFormats.size())};
                    }
                    // TensorRT asks about pos only once positions before it hold accepted descriptors.
                    bool prefixAccepted = true;
                    for (int32_t q = 0; q < pos; ++q)
                    {
                        prefixAccepted = prefixAccepted && specAccepts(q, combo);
                    }
                    if (!prefixAccepted)
                    {
                        continue;
                    }
                    PluginTensorDesc descs[3];
                    for (int i = 0; i < 3; ++i)
                    {
                        fillDesc(descs[i], combo[i]);
                    }
                    bool const expected = specAccepts(pos, combo);
                    bool const actual = query(pos, descs, 2, 1);
                    ++asked;
                    accepted += actual ? 1 : 0;
                    if (actual != expected && mismatches.size() < 5)
                    {
                        mismatches.push_back(describe(combo) + (actual ? " accepted" : " rejected"));
                    }
                }
        std::ostringstream detail;
        detail << asked << " combinations asked, " << accepted << " accepted";
        for (auto const& m : mismatches)
        {
            detail << "; WRONG: " << m;
        }
        report("formats", "pos" + std::to_string(pos), mismatches.empty(), detail.str());
    }

    // Whole combinations: accepted at every position, exactly LINEAR fp32 x3 and LINEAR fp16 x3.
    std::vector<std::string> full;
    for (int c0 = 0; c0 < nbChoices; ++c0)
        for (int c1 = 0; c1 < nbChoices; ++c1)
            for (int c2 = 0; c2 < nbChoices; ++c2)
            {
                int const choice[3] = {c0, c1, c2};
                Combo combo[3];
                PluginTensorDesc descs[3];
                for (int i = 0; i < 3; ++i)
                {
                    combo[i] = Combo{
                        choice[i] / static_cast<int>(kFormats.size()), choice[i] % static_cast<int>(kFormats.size())};
                    fillDesc(descs[i], combo[i]);
                }
                bool all = true;
                for (int32_t pos = 0; pos < 3 && all; ++pos)
                {
                    all = query(pos, descs, 2, 1);
                }
                if (all)
                {
                    full.push_back(describe(combo));
                }
            }
    std::ostringstream detail;
    for (auto const& f : full)
    {
        detail << "[" << f << "] ";
    }
    bool const exact = full.size() == 2 && full[0] == "fp32/LINEAR,fp32/LINEAR,fp32/LINEAR"
        && full[1] == "fp16/LINEAR,fp16/LINEAR,fp16/LINEAR";
    report("formats", "accepted_combinations", exact, detail.str());

    // Malformed calls: wrong input/output counts and out-of-range positions are refused.
    PluginTensorDesc descs[4];
    for (auto& d : descs)
    {
        fillDesc(d, Combo{0, 0});
    }
    bool const badCounts = !query(0, descs, 1, 1) && !query(0, descs, 3, 1) && !query(0, descs, 2, 2)
        && !query(-1, descs, 2, 1) && !query(3, descs, 2, 1);
    report("formats", "malformed_calls", badCounts, "nbInputs 1/3, nbOutputs 2, pos -1/3 refused");
}

// ---------------------------------------------------------------------------------------------
// Output shape: X (N, C, H, W), grid (N, Ho, Wo, 2) -> Y (N, C, Ho, Wo), through either interface.
// query(inputs, nbInputs, outputs&) returns false when the plugin signals an error.
// ---------------------------------------------------------------------------------------------

template <typename Query>
void checkShapes(Query query)
{
    {
        FakeExprBuilderImpl impl;
        DimsExprs in[2];
        DimValue const x[4] = {2, 3, 5, 7};
        DimValue const g[4] = {2, 11, 13, 2};
        in[0].nbDims = 4;
        in[1].nbDims = 4;
        for (int i = 0; i < 4; ++i)
        {
            in[0].d[i] = impl.make(true, x[i]);
            in[1].d[i] = impl.make(true, g[i]);
        }
        DimsExprs out{};
        bool const ok = query(impl, in, 2, out);
        std::ostringstream detail;
        bool good = ok && out.nbDims == 4;
        if (good)
        {
            detail << "Y = (";
            for (int i = 0; i < 4; ++i)
            {
                good = good && out.d[i] != nullptr && out.d[i]->isConstant();
                detail << (i ? ", " : "") << (out.d[i] != nullptr ? static_cast<long long>(out.d[i]->getConstantValue()) : -999);
            }
            detail << ") from X (2, 3, 5, 7), grid (2, 11, 13, 2)";
            good = good && out.d[0]->getConstantValue() == 2 && out.d[1]->getConstantValue() == 3
                && out.d[2]->getConstantValue() == 11 && out.d[3]->getConstantValue() == 13;
        }
        else
        {
            detail << "call failed or nbDims " << out.nbDims;
        }
        report("shapes", "constant_dims", good, detail.str());
    }
    {
        // Dynamic shapes: every dimension symbolic; Y's must be the very expressions of X and grid.
        FakeExprBuilderImpl impl;
        DimsExprs in[2];
        in[0].nbDims = 4;
        in[1].nbDims = 4;
        for (int i = 0; i < 4; ++i)
        {
            in[0].d[i] = impl.make(false, 0);
            in[1].d[i] = impl.make(false, 0);
        }
        in[1].d[3] = impl.make(true, 2);
        DimsExprs out{};
        bool const ok = query(impl, in, 2, out);
        bool const good = ok && out.nbDims == 4 && out.d[0] == in[0].d[0] && out.d[1] == in[0].d[1]
            && out.d[2] == in[1].d[1] && out.d[3] == in[1].d[2];
        std::ostringstream detail;
        detail << "Y.d = (X.d[0], X.d[1], grid.d[1], grid.d[2]) by identity: " << (good ? "yes" : "no")
               << "; expression builder calls: " << impl.calls();
        report("shapes", "symbolic_dims", good, detail.str());
    }
    {
        FakeExprBuilderImpl impl;
        DimsExprs in[2];
        in[0].nbDims = 3;
        in[1].nbDims = 4;
        for (int i = 0; i < 4; ++i)
        {
            in[0].d[i] = impl.make(true, 4);
            in[1].d[i] = impl.make(true, 4);
        }
        DimsExprs out{};
        bool const rank3 = query(impl, in, 2, out);
        in[0].nbDims = 4;
        bool const oneInput = query(impl, in, 1, out);
        report("shapes", "malformed_inputs", !rank3 && !oneInput,
            std::string("rank-3 X ") + (rank3 ? "accepted" : "refused") + ", one input " + (oneInput ? "accepted" : "refused"));
    }
}

#if NV_TENSORRT_MAJOR >= 10
// =============================================================================================
// IPluginV3 (TensorRT 10+)
// =============================================================================================

using dattn::plugin::GridSamplePluginCreator;

IPluginV3OneCore* coreOf(IPluginV3* plugin)
{
    return plugin == nullptr ? nullptr
                             : static_cast<IPluginV3OneCore*>(plugin->getCapabilityInterface(PluginCapabilityType::kCORE));
}
IPluginV3OneBuild* buildOf(IPluginV3* plugin)
{
    return plugin == nullptr ? nullptr
                             : static_cast<IPluginV3OneBuild*>(plugin->getCapabilityInterface(PluginCapabilityType::kBUILD));
}
IPluginV3OneRuntime* runtimeOf(IPluginV3* plugin)
{
    return plugin == nullptr
        ? nullptr
        : static_cast<IPluginV3OneRuntime*>(plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
}

// Reads align_corners out of getFieldsToSerialize(); -1 and a reason when the fields are not as expected.
int32_t serializedAlignCorners(IPluginV3* plugin, void const** storage, std::string& detail)
{
    IPluginV3OneRuntime* runtime = runtimeOf(plugin);
    if (runtime == nullptr)
    {
        detail = "no runtime capability";
        return -1;
    }
    PluginFieldCollection const* fields = runtime->getFieldsToSerialize();
    if (fields == nullptr || fields->nbFields != 1 || fields->fields == nullptr)
    {
        detail = "getFieldsToSerialize: expected exactly one field";
        return -1;
    }
    PluginField const& field = fields->fields[0];
    if (!sameString(field.name, "align_corners") || field.type != PluginFieldType::kINT32 || field.length != 1
        || field.data == nullptr)
    {
        detail = "field " + quoted(field.name) + " is not align_corners / INT32 / length 1";
        return -1;
    }
    if (storage != nullptr)
    {
        *storage = field.data;
    }
    int32_t value{-1};
    std::memcpy(&value, field.data, sizeof(value));
    detail = "align_corners INT32 x1 = " + std::to_string(value);
    return value;
}

void runIdentity(GridSamplePluginCreator& creator)
{
    report("identity", "creator.name", sameString(creator.getPluginName(), "DAttnGridSample"), quoted(creator.getPluginName()));
    report("identity", "creator.version", sameString(creator.getPluginVersion(), "1"), quoted(creator.getPluginVersion()));
    report("identity", "creator.namespace", sameString(creator.getPluginNamespace(), "dattn"), quoted(creator.getPluginNamespace()));
    std::string detail;
    bool const names = fieldNamesAreAlignCornersOnly(creator.getFieldNames(), detail);
    report("identity", "creator.field_names", names, detail);
    InterfaceInfo const info = creator.getInterfaceInfo();
    report("identity", "creator.interface", sameString(info.kind, "PLUGIN CREATOR_V3ONE"),
        quoted(info.kind) + " " + std::to_string(info.major) + "." + std::to_string(info.minor));

    Attributes attributes(1);
    std::unique_ptr<IPluginV3> plugin(creator.createPlugin("probe", &attributes.collection, TensorRTPhase::kBUILD));
    IPluginV3OneCore* core = coreOf(plugin.get());
    bool const pluginIdentity = core != nullptr && sameString(core->getPluginName(), "DAttnGridSample")
        && sameString(core->getPluginVersion(), "1") && sameString(core->getPluginNamespace(), "dattn");
    report("identity", "plugin.name_version_namespace", pluginIdentity,
        core == nullptr ? "no core capability"
                        : quoted(core->getPluginName()) + " " + quoted(core->getPluginVersion()) + " "
                + quoted(core->getPluginNamespace()));
    bool const capabilities = plugin != nullptr && buildOf(plugin.get()) != nullptr && runtimeOf(plugin.get()) != nullptr;
    report("identity", "plugin.capabilities", capabilities && core != nullptr, "kCORE, kBUILD, kRUNTIME interfaces");

    int32_t nbCreators{-1};
    IPluginCreatorInterface* const* creators = getCreators(nbCreators);
    bool entry = creators != nullptr && nbCreators == 1 && creators[0] != nullptr;
    std::string entryDetail = "getCreators: " + std::to_string(nbCreators) + " creator(s)";
    if (entry)
    {
        InterfaceInfo const entryInfo = creators[0]->getInterfaceInfo();
        entry = sameString(entryInfo.kind, "PLUGIN CREATOR_V3ONE");
        auto* v3 = static_cast<IPluginCreatorV3One*>(creators[0]);
        entry = entry && sameString(v3->getPluginName(), "DAttnGridSample") && sameString(v3->getPluginVersion(), "1")
            && sameString(v3->getPluginNamespace(), "dattn");
        entryDetail += ", " + quoted(entryInfo.kind) + " " + quoted(v3->getPluginName()) + "/"
            + quoted(v3->getPluginVersion()) + "/" + quoted(v3->getPluginNamespace());
    }
    report("identity", "entry_point", entry, entryDetail);
}

void runRoundTrip(GridSamplePluginCreator& creator)
{
    for (int32_t alignCorners : {0, 1})
    {
        std::string const suffix = ".align_corners=" + std::to_string(alignCorners);
        Attributes attributes(alignCorners);
        std::unique_ptr<IPluginV3> built(creator.createPlugin("gs_build", &attributes.collection, TensorRTPhase::kBUILD));
        report("roundtrip", "create_build" + suffix, built != nullptr, built ? "plugin created" : "createPlugin returned null");
        if (!built)
        {
            continue;
        }
        // What the engine stores: the fields of the runtime capability, copied as TensorRT would copy them.
        std::string detail;
        void const* builtStorage{nullptr};
        int32_t const stored = serializedAlignCorners(built.get(), &builtStorage, detail);
        report("roundtrip", "fields_to_serialize" + suffix, stored == alignCorners, detail);
        if (stored < 0)
        {
            continue;
        }
        PluginFieldCollection const* fields = runtimeOf(built.get())->getFieldsToSerialize();
        std::vector<std::string> names;
        std::vector<std::vector<unsigned char>> bytes;
        std::vector<PluginField> copied;
        for (int32_t i = 0; i < fields->nbFields; ++i)
        {
            names.emplace_back(fields->fields[i].name);
            unsigned char const* data = static_cast<unsigned char const*>(fields->fields[i].data);
            bytes.emplace_back(data, data + sizeof(int32_t) * fields->fields[i].length);
        }
        built.reset(); // the engine outlives the builder's plugin
        for (size_t i = 0; i < names.size(); ++i)
        {
            copied.emplace_back(names[i].c_str(), bytes[i].data(), PluginFieldType::kINT32, 1);
        }
        PluginFieldCollection serialized{};
        serialized.nbFields = static_cast<int32_t>(copied.size());
        serialized.fields = copied.data();

        std::unique_ptr<IPluginV3> restored(creator.createPlugin("gs_runtime", &serialized, TensorRTPhase::kRUNTIME));
        int32_t const restoredValue = restored ? serializedAlignCorners(restored.get(), nullptr, detail) : -1;
        report("roundtrip", "create_runtime" + suffix, restoredValue == alignCorners,
            restored ? "restored " + detail : std::string("createPlugin(kRUNTIME) returned null"));
        if (!restored)
        {
            continue;
        }

        // clone() and attachToContext() keep the value and point the fields at their own storage.
        void const* restoredStorage{nullptr};
        serializedAlignCorners(restored.get(), &restoredStorage, detail);
        std::unique_ptr<IPluginV3> cloned(restored->clone());
        void const* cloneStorage{nullptr};
        int32_t const cloneValue = cloned ? serializedAlignCorners(cloned.get(), &cloneStorage, detail) : -1;
        restored.reset();
        int32_t const afterOriginalGone = cloned ? serializedAlignCorners(cloned.get(), nullptr, detail) : -1;
        report("roundtrip", "clone" + suffix,
            cloneValue == alignCorners && afterOriginalGone == alignCorners && cloneStorage != restoredStorage,
            cloned ? "clone " + detail + (cloneStorage != restoredStorage ? ", own field storage" : ", SHARES the original's storage")
                   : std::string("clone() returned null"));
        if (cloned)
        {
            std::unique_ptr<IPluginV3> attached(runtimeOf(cloned.get())->attachToContext(nullptr));
            int32_t const attachedValue = attached ? serializedAlignCorners(attached.get(), nullptr, detail) : -1;
            report("roundtrip", "attach_to_context" + suffix, attachedValue == alignCorners,
                attached ? detail : std::string("attachToContext returned null"));
        }
    }

    // Bad attributes are refused at either phase.
    Attributes missing(0, false);
    Attributes two(2);
    std::unique_ptr<IPluginV3> a(creator.createPlugin("bad", &missing.collection, TensorRTPhase::kBUILD));
    std::unique_ptr<IPluginV3> b(creator.createPlugin("bad", &two.collection, TensorRTPhase::kRUNTIME));
    std::unique_ptr<IPluginV3> c(creator.createPlugin("bad", nullptr, TensorRTPhase::kBUILD));
    report("roundtrip", "reject_bad_attributes", !a && !b && !c, "missing align_corners, align_corners=2, null collection");
}

void runFormats(GridSamplePluginCreator& creator)
{
    Attributes attributes(0);
    std::unique_ptr<IPluginV3> plugin(creator.createPlugin("gs", &attributes.collection, TensorRTPhase::kBUILD));
    IPluginV3OneBuild* build = buildOf(plugin.get());
    if (build == nullptr)
    {
        report("formats", "plugin", false, "no plugin / build capability");
        return;
    }
    checkFormats([build](int32_t pos, PluginTensorDesc const* descs, int32_t nbInputs, int32_t nbOutputs) {
        DynamicPluginTensorDesc dynamic[4];
        for (int i = 0; i < 4; ++i)
        {
            dynamic[i] = DynamicPluginTensorDesc{};
            dynamic[i].desc = descs[i < 3 ? i : 2];
            dynamic[i].min = descs[i < 3 ? i : 2].dims;
            dynamic[i].max = descs[i < 3 ? i : 2].dims;
        }
        return build->supportsFormatCombination(pos, dynamic, nbInputs, nbOutputs);
    });
}

void runShapes(GridSamplePluginCreator& creator)
{
    Attributes attributes(1);
    std::unique_ptr<IPluginV3> plugin(creator.createPlugin("gs", &attributes.collection, TensorRTPhase::kBUILD));
    IPluginV3OneBuild* build = buildOf(plugin.get());
    if (build == nullptr)
    {
        report("shapes", "plugin", false, "no plugin / build capability");
        return;
    }
    report("shapes", "nb_outputs", build->getNbOutputs() == 1, "getNbOutputs() = " + std::to_string(build->getNbOutputs()));
    checkShapes([build](FakeExprBuilderImpl& impl, DimsExprs const* inputs, int32_t nbInputs, DimsExprs& out) {
        FakeExprBuilder builder(impl);
        return build->getOutputShapes(inputs, nbInputs, nullptr, 0, &out, 1, builder) == 0;
    });
    bool types = true;
    std::string detail;
    for (DataType type : {DataType::kFLOAT, DataType::kHALF})
    {
        DataType in[2] = {type, type};
        DataType out[1] = {DataType::kINT8};
        types = types && build->getOutputDataTypes(out, 1, in, 2) == 0 && out[0] == type;
        detail += std::string(type == DataType::kFLOAT ? "fp32" : "fp16") + "->"
            + (out[0] == DataType::kFLOAT ? "fp32" : out[0] == DataType::kHALF ? "fp16" : "other") + " ";
    }
    report("shapes", "output_type", types, detail);
}

int runAll()
{
    GridSamplePluginCreator creator;
    std::printf("INFO\tTensorRT %d.%d, interface IPluginV3 (IPluginV3OneCore/Build/Runtime)\n", NV_TENSORRT_MAJOR,
        NV_TENSORRT_MINOR);
    runIdentity(creator);
    runRoundTrip(creator);
    runFormats(creator);
    runShapes(creator);
    return 0;
}

#else
// =============================================================================================
// IPluginV2DynamicExt (TensorRT 8.x)
// =============================================================================================

using dattn::plugin::GridSamplePluginLegacyCreator;

struct PluginDeleter
{
    void operator()(IPluginV2* plugin) const
    {
        if (plugin != nullptr)
        {
            plugin->destroy();
        }
    }
};
using PluginPtr = std::unique_ptr<IPluginV2, PluginDeleter>;

std::vector<unsigned char> serialized(IPluginV2 const& plugin)
{
    std::vector<unsigned char> bytes(plugin.getSerializationSize() + 8, 0xA5);
    plugin.serialize(bytes.data());
    bytes.resize(plugin.getSerializationSize());
    return bytes;
}

std::string hex(std::vector<unsigned char> const& bytes)
{
    std::string text;
    char buffer[4];
    for (unsigned char b : bytes)
    {
        std::snprintf(buffer, sizeof(buffer), "%02x", b);
        text += buffer;
    }
    return text.empty() ? "(empty)" : text;
}

void runIdentity(GridSamplePluginLegacyCreator& creator)
{
    report("identity", "creator.name", sameString(creator.getPluginName(), "DAttnGridSample"), quoted(creator.getPluginName()));
    report("identity", "creator.version", sameString(creator.getPluginVersion(), "1"), quoted(creator.getPluginVersion()));
    report("identity", "creator.namespace", sameString(creator.getPluginNamespace(), "dattn"), quoted(creator.getPluginNamespace()));
    std::string detail;
    bool const names = fieldNamesAreAlignCornersOnly(creator.getFieldNames(), detail);
    report("identity", "creator.field_names", names, detail);

    Attributes attributes(1);
    PluginPtr plugin(creator.createPlugin("probe", &attributes.collection));
    bool const pluginIdentity = plugin != nullptr && sameString(plugin->getPluginType(), "DAttnGridSample")
        && sameString(plugin->getPluginVersion(), "1") && sameString(plugin->getPluginNamespace(), "dattn");
    report("identity", "plugin.name_version_namespace", pluginIdentity,
        plugin == nullptr ? "createPlugin returned null"
                          : quoted(plugin->getPluginType()) + " " + quoted(plugin->getPluginVersion()) + " "
                + quoted(plugin->getPluginNamespace()));
    bool const dynamicExt = dynamic_cast<IPluginV2DynamicExt*>(plugin.get()) != nullptr;
    report("identity", "plugin.is_dynamic_ext", dynamicExt, "createPlugin returns an IPluginV2DynamicExt");

#if NV_TENSORRT_MINOR >= 6
    int32_t nbCreators{-1};
    IPluginCreator* const* creators = getPluginCreators(nbCreators);
    bool entry = creators != nullptr && nbCreators == 1 && creators[0] != nullptr;
    std::string entryDetail = "getPluginCreators: " + std::to_string(nbCreators) + " creator(s)";
    if (entry)
    {
        entry = sameString(creators[0]->getPluginName(), "DAttnGridSample")
            && sameString(creators[0]->getPluginVersion(), "1") && sameString(creators[0]->getPluginNamespace(), "dattn");
        entryDetail += ", " + quoted(creators[0]->getPluginName()) + "/" + quoted(creators[0]->getPluginVersion()) + "/"
            + quoted(creators[0]->getPluginNamespace());
    }
    report("identity", "entry_point", entry, entryDetail);
#endif
}

void runRoundTrip(GridSamplePluginLegacyCreator& creator)
{
    for (int32_t alignCorners : {0, 1})
    {
        std::string const suffix = ".align_corners=" + std::to_string(alignCorners);
        Attributes attributes(alignCorners);
        PluginPtr built(creator.createPlugin("gs_build", &attributes.collection));
        report("roundtrip", "create_build" + suffix, built != nullptr, built ? "plugin created" : "createPlugin returned null");
        if (!built)
        {
            continue;
        }
        // The README's format: align_corners as one native-endian int32.
        std::vector<unsigned char> const bytes = serialized(*built);
        std::vector<unsigned char> expected(sizeof(int32_t));
        std::memcpy(expected.data(), &alignCorners, sizeof(int32_t));
        report("roundtrip", "serialize" + suffix, bytes == expected,
            std::to_string(built->getSerializationSize()) + " byte(s): " + hex(bytes));
        built.reset(); // the engine outlives the builder's plugin

        PluginPtr restored(creator.deserializePlugin("gs_runtime", bytes.data(), bytes.size()));
        std::vector<unsigned char> const again = restored ? serialized(*restored) : std::vector<unsigned char>{};
        int32_t restoredValue{-1};
        if (again.size() == sizeof(int32_t))
        {
            std::memcpy(&restoredValue, again.data(), sizeof(int32_t));
        }
        report("roundtrip", "deserialize" + suffix, restored != nullptr && again == bytes && restoredValue == alignCorners,
            restored ? "re-serialized " + hex(again) + " -> align_corners " + std::to_string(restoredValue)
                     : std::string("deserializePlugin returned null"));
        if (!restored)
        {
            continue;
        }
        bool const namespaced = sameString(restored->getPluginNamespace(), "dattn");
        PluginPtr cloned(static_cast<IPluginV2DynamicExt*>(restored.get())->clone());
        restored.reset();
        std::vector<unsigned char> const cloneBytes = cloned ? serialized(*cloned) : std::vector<unsigned char>{};
        report("roundtrip", "clone" + suffix,
            cloned != nullptr && cloneBytes == bytes && namespaced && sameString(cloned->getPluginNamespace(), "dattn"),
            cloned ? "clone serializes " + hex(cloneBytes) + ", namespace " + quoted(cloned->getPluginNamespace())
                   : std::string("clone() returned null"));
    }

    Attributes missing(0, false);
    Attributes two(2);
    PluginPtr a(creator.createPlugin("bad", &missing.collection));
    PluginPtr b(creator.createPlugin("bad", &two.collection));
    PluginPtr c(creator.createPlugin("bad", nullptr));
    report("roundtrip", "reject_bad_attributes", !a && !b && !c, "missing align_corners, align_corners=2, null collection");

    int32_t const seven = 7;
    unsigned char const shortData[3] = {1, 0, 0};
    PluginPtr d(creator.deserializePlugin("bad", &seven, sizeof(seven)));
    PluginPtr e(creator.deserializePlugin("bad", shortData, sizeof(shortData)));
    PluginPtr f(creator.deserializePlugin("bad", nullptr, 0));
    report("roundtrip", "reject_corrupt_bytes", !d && !e && !f, "value 7, 3 bytes, no bytes");
}

void runFormats(GridSamplePluginLegacyCreator& creator)
{
    Attributes attributes(0);
    PluginPtr plugin(creator.createPlugin("gs", &attributes.collection));
    auto* dynamic = dynamic_cast<IPluginV2DynamicExt*>(plugin.get());
    if (dynamic == nullptr)
    {
        report("formats", "plugin", false, "no IPluginV2DynamicExt");
        return;
    }
    checkFormats([dynamic](int32_t pos, PluginTensorDesc const* descs, int32_t nbInputs, int32_t nbOutputs) {
        PluginTensorDesc copy[4] = {descs[0], descs[1], descs[2], descs[2]};
        return dynamic->supportsFormatCombination(pos, copy, nbInputs, nbOutputs);
    });
}

void runShapes(GridSamplePluginLegacyCreator& creator)
{
    Attributes attributes(1);
    PluginPtr plugin(creator.createPlugin("gs", &attributes.collection));
    auto* dynamic = dynamic_cast<IPluginV2DynamicExt*>(plugin.get());
    if (dynamic == nullptr)
    {
        report("shapes", "plugin", false, "no IPluginV2DynamicExt");
        return;
    }
    report("shapes", "nb_outputs", dynamic->getNbOutputs() == 1, "getNbOutputs() = " + std::to_string(dynamic->getNbOutputs()));
    checkShapes([dynamic](FakeExprBuilderImpl& impl, DimsExprs const* inputs, int32_t nbInputs, DimsExprs& out) {
        FakeExprBuilder builder(impl);
        out = dynamic->getOutputDimensions(0, inputs, nbInputs, builder);
        return out.nbDims >= 0;
    });
    bool types = true;
    std::string detail;
    for (DataType type : {DataType::kFLOAT, DataType::kHALF})
    {
        DataType in[2] = {type, type};
        DataType const out = dynamic->getOutputDataType(0, in, 2);
        types = types && out == type;
        detail += std::string(type == DataType::kFLOAT ? "fp32" : "fp16") + "->"
            + (out == DataType::kFLOAT ? "fp32" : out == DataType::kHALF ? "fp16" : "other") + " ";
    }
    report("shapes", "output_type", types, detail);
}

int runAll()
{
    GridSamplePluginLegacyCreator creator;
    std::printf("INFO\tTensorRT %d.%d, interface IPluginV2DynamicExt\n", NV_TENSORRT_MAJOR, NV_TENSORRT_MINOR);
    runIdentity(creator);
    runRoundTrip(creator);
    runFormats(creator);
    runShapes(creator);
    return 0;
}
#endif

} // namespace

int main()
{
    runAll();
    std::printf("SUMMARY\t%d checks, %d failed\n", gChecks, gFailures);
    return gFailures == 0 ? 0 : 1;
}
