// SPDX-FileCopyrightText: Copyright (c) dattn contributors
// SPDX-License-Identifier: AGPL-3.0-or-later
//
// Host checks of the DAttnGridSample plugin classes, built against one set of TensorRT headers without
// libnvinfer and run without a GPU (tests/test_trt_plugin_roundtrip.py builds and runs it). The plugin's
// build-time methods are called the way TensorRT's builder calls them, then its runtime methods the way
// an engine does.
//
// Checks, each printed as one tab-separated line "CHECK <group> <name> <PASS|FAIL> <detail>":
//   identity    the creator's (and the plugins') name / version / namespace, the creator's field names,
//               and the library entry point TensorRT's loadLibrary uses (getPluginCreators 8.6, getCreators 10+);
//   roundtrip   align_corners 0 and 1 through creation, serialization and the runtime re-creation
//               (8.x: serialize / deserializePlugin; 10+: getFieldsToSerialize / createPlugin(kRUNTIME)),
//               plus clone and the rejection of bad attributes and corrupt bytes;
//   formats     supportsFormatCombination over every position x every DataType x every TensorFormat of the
//               headers, with TensorRT's convention that earlier positions hold already accepted descriptors;
//   shapes      getOutputDimensions (8.x) / getOutputShapes (10+) with constant and symbolic dimensions
//               through an IExprBuilder of our own, and the output data type;
//   configure   configurePlugin (and onShapeChange on 10+) for right and wrong tensors and counts, and
//               getWorkspaceSize;
//   enqueue     on a plugin that went through clone, serialization and re-creation: wrong arguments (null
//               pointers, shapes, types, formats) give -1 and a logged reason before any kernel is launched;
//               an empty output gives 0; a right call launches the kernel (0 and torch's values with a GPU,
//               -1 and the CUDA error without one);
//   exceptions  every allocation of the noexcept methods that allocate fails in turn (std::bad_alloc from this
//               program's operator new): a null / unchanged result, a logged error, nothing leaked, no
//               std::terminate; the other methods are shown to allocate nothing;
//   logging     errors reach TensorRT's global logger (getLogger), and on 8.6+ the logger TensorRT hands over
//               through setLoggerFinder first.
// The process exits 0 when every check passed.
//
// Build (the test does this): g++ -std=c++14 -DDATTN_STATIC_REGISTRATION=0 -I<plugin dir> -isystem <trt include>
//   -isystem <cuda include> this file driverSupport.cpp allocationFaults.cpp ../gridSamplePluginCommon.cpp
//   ../gridSamplePlugin.cpp ../gridSamplePluginLegacy.cpp ../gridSamplePluginRegistration.cpp gridSampleKernel.o
//   -lcudart_static -ldl -lpthread -lrt
// The plugin refers to libnvinfer's getPluginRegistry and getLogger weakly: the first stays unresolved (static
// registration is off anyway), the second resolves to driverSupport.cpp's.

#include "driverSupport.h"

#include "gridSampleBilinear.h"
#include "gridSamplePlugin.h"
#include "gridSamplePluginCommon.h"
#include "gridSamplePluginLegacy.h"

#include "NvInferRuntime.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#if NV_TENSORRT_MAJOR >= 10
extern "C" nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators);
#elif DATTN_TRT_HAS_LOGGER_FINDER
extern "C" nvinfer1::IPluginCreator* const* getPluginCreators(int32_t& nbCreators);
#endif
#if DATTN_TRT_HAS_LOGGER_FINDER
extern "C" void setLoggerFinder(nvinfer1::ILoggerFinder* finder);
#endif

namespace
{

using namespace nvinfer1;
using driver::allocatesNothing;
using driver::allocationFailuresHandled;
using driver::DimValue;
using driver::FakeExprBuilder;
using driver::FakeExprBuilderImpl;
using driver::globalLogger;
using driver::Outcome;
using driver::report;
using driver::runIsolated;

bool sameString(char const* actual, char const* expected)
{
    return actual != nullptr && std::strcmp(actual, expected) == 0;
}

std::string quoted(char const* text)
{
    return text == nullptr ? std::string("(null)") : "\"" + std::string(text) + "\"";
}

bool startsWith(char const* text, char const* prefix)
{
    return text != nullptr && std::strncmp(text, prefix, std::strlen(prefix)) == 0;
}

// Longer than any std::string keeps inline, so setting it allocates.
constexpr char const* kLongNamespace = "dattn.a_namespace_long_enough_to_allocate";

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

bool fieldNamesAreRight(PluginFieldCollection const* names)
{
    return names != nullptr && names->nbFields == 1 && sameString(names->fields[0].name, "align_corners")
        && names->fields[0].type == PluginFieldType::kINT32 && names->fields[0].length == 1;
}

// ---------------------------------------------------------------------------------------------
// Tensors. The reference problem: X (2, 3, 5, 7), grid (2, 4, 6, 2) -> Y (2, 3, 4, 6); nothing square, so a
// swapped height and width shows.
// ---------------------------------------------------------------------------------------------

Dims dims4(int64_t a, int64_t b, int64_t c, int64_t d)
{
    Dims result{};
    result.nbDims = 4;
    result.d[0] = static_cast<DimValue>(a);
    result.d[1] = static_cast<DimValue>(b);
    result.d[2] = static_cast<DimValue>(c);
    result.d[3] = static_cast<DimValue>(d);
    return result;
}

PluginTensorDesc tensor(Dims const& dims, DataType type = DataType::kFLOAT, TensorFormat format = TensorFormat::kLINEAR)
{
    PluginTensorDesc desc{};
    desc.dims = dims;
    desc.type = type;
    desc.format = format;
    desc.scale = 1.0F;
    return desc;
}

struct Problem
{
    PluginTensorDesc in[2];
    PluginTensorDesc out[1];
};

Problem referenceProblem(DataType type = DataType::kFLOAT)
{
    Problem problem{};
    problem.in[0] = tensor(dims4(2, 3, 5, 7), type);
    problem.in[1] = tensor(dims4(2, 4, 6, 2), type);
    problem.out[0] = tensor(dims4(2, 3, 4, 6), type);
    return problem;
}

// What configurePlugin sees at build time: batch and sizes dynamic (-1), with their profile range.
void toDynamic(PluginTensorDesc const* descs, int32_t count, DynamicPluginTensorDesc* dynamic)
{
    for (int32_t i = 0; i < count; ++i)
    {
        dynamic[i] = DynamicPluginTensorDesc{};
        dynamic[i].desc = descs[i];
        dynamic[i].min = descs[i].dims;
        dynamic[i].max = descs[i].dims;
        for (int32_t j = 0; j < descs[i].dims.nbDims; ++j)
        {
            bool const staysFixed = (i == 0 && j == 1) || (i == 1 && j == 3) || (i == 2 && j == 1);
            if (!staysFixed && descs[i].dims.d[j] > 0)
            {
                dynamic[i].desc.dims.d[j] = -1;
                dynamic[i].min.d[j] = 1;
                dynamic[i].max.d[j] = 4 * descs[i].dims.d[j];
            }
        }
#if NV_TENSORRT_MAJOR >= 10
        dynamic[i].opt = descs[i].dims;
#endif
    }
}

// ---------------------------------------------------------------------------------------------
// supportsFormatCombination over every DataType and TensorFormat of these headers.
// query(pos, PluginTensorDesc[3], nbInputs, nbOutputs) wraps either interface.
// ---------------------------------------------------------------------------------------------

int32_t const kNbTypes = EnumMax<DataType>();
int32_t const kNbFormats = EnumMax<TensorFormat>();

std::string describeChoice(int32_t choice)
{
    DataType const type = static_cast<DataType>(choice / kNbFormats);
    TensorFormat const format = static_cast<TensorFormat>(choice % kNbFormats);
    std::string const typeName = type == DataType::kFLOAT ? "fp32"
        : type == DataType::kHALF                          ? "fp16"
                                                           : "type" + std::to_string(static_cast<int32_t>(type));
    std::string const formatName
        = format == TensorFormat::kLINEAR ? "LINEAR" : "format" + std::to_string(static_cast<int32_t>(format));
    return typeName + "/" + formatName;
}

bool specAccepts(int32_t pos, int32_t const* choices)
{
    DataType const type = static_cast<DataType>(choices[pos] / kNbFormats);
    bool const linear = static_cast<TensorFormat>(choices[pos] % kNbFormats) == TensorFormat::kLINEAR;
    bool const floating = type == DataType::kFLOAT || type == DataType::kHALF;
    bool const sameAsX = pos == 0 || choices[pos] / kNbFormats == choices[0] / kNbFormats;
    return linear && floating && sameAsX;
}

using FormatQuery = std::function<bool(int32_t, PluginTensorDesc const*, int32_t, int32_t)>;

bool ask(FormatQuery const& query, int32_t pos, int32_t const* choices)
{
    PluginTensorDesc descs[3];
    for (int32_t i = 0; i < 3; ++i)
    {
        int32_t const choice = i <= pos ? choices[i] : 0; // later positions are not decided yet
        descs[i] = tensor(dims4(2, 2, 2, 2), static_cast<DataType>(choice / kNbFormats),
            static_cast<TensorFormat>(choice % kNbFormats));
    }
    return query(pos, descs, 2, 1);
}

// Walks positions as TensorRT does: at each position every type x format is asked, and only accepted ones
// are carried to the next position.
void walkFormats(FormatQuery const& query, int32_t pos, int32_t* choices, int* asked, int* accepted,
    std::vector<std::string>& mismatches, std::vector<std::string>& full)
{
    for (int32_t choice = 0; choice < kNbTypes * kNbFormats; ++choice)
    {
        choices[pos] = choice;
        bool const expected = specAccepts(pos, choices);
        bool const actual = ask(query, pos, choices);
        ++asked[pos];
        accepted[pos] += actual ? 1 : 0;
        if (actual != expected && mismatches.size() < 5)
        {
            std::string prefix;
            for (int32_t i = 0; i <= pos; ++i)
            {
                prefix += (i ? "," : "") + describeChoice(choices[i]);
            }
            mismatches.push_back("pos" + std::to_string(pos) + " [" + prefix + "] " + (actual ? "accepted" : "rejected"));
        }
        if (actual && pos == 2)
        {
            full.push_back(describeChoice(choices[0]) + "," + describeChoice(choices[1]) + "," + describeChoice(choices[2]));
        }
        else if (actual)
        {
            walkFormats(query, pos + 1, choices, asked, accepted, mismatches, full);
        }
    }
}

void checkFormats(FormatQuery const& query)
{
    int asked[3] = {0, 0, 0};
    int accepted[3] = {0, 0, 0};
    int32_t choices[3] = {0, 0, 0};
    std::vector<std::string> mismatches;
    std::vector<std::string> full;
    walkFormats(query, 0, choices, asked, accepted, mismatches, full);
    for (int32_t pos = 0; pos < 3; ++pos)
    {
        std::ostringstream detail;
        detail << asked[pos] << " descriptors asked (" << kNbTypes << " types x " << kNbFormats
               << " formats after each accepted prefix), " << accepted[pos] << " accepted";
        bool ok = asked[pos] > 0;
        for (auto const& m : mismatches)
        {
            if (m.compare(0, 4, "pos" + std::to_string(pos)) == 0)
            {
                detail << "; WRONG: " << m;
                ok = false;
            }
        }
        report("formats", "pos" + std::to_string(pos), ok, detail.str());
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
        d = tensor(dims4(2, 2, 2, 2));
    }
    bool const badCounts = !query(0, descs, 1, 1) && !query(0, descs, 3, 1) && !query(0, descs, 2, 2)
        && !query(-1, descs, 2, 1) && !query(3, descs, 2, 1);
    report("formats", "malformed_calls", badCounts, "nbInputs 1/3, nbOutputs 2, pos -1/3 refused");
}

// ---------------------------------------------------------------------------------------------
// Output shape: X (N, C, H, W), grid (N, Ho, Wo, 2) -> Y (N, C, Ho, Wo), through either interface.
// query(impl, inputs, nbInputs, outputs&) returns false when the plugin signals an error.
// ---------------------------------------------------------------------------------------------

using ShapeQuery = std::function<bool(FakeExprBuilderImpl&, DimsExprs const*, int32_t, DimsExprs&)>;

void fill(FakeExprBuilderImpl& impl, DimsExprs& exprs, std::vector<int64_t> const& values)
{
    exprs.nbDims = static_cast<int32_t>(values.size());
    for (size_t i = 0; i < values.size(); ++i)
    {
        // -1 stands for a symbolic dimension.
        exprs.d[i] = impl.make(values[i] >= 0, static_cast<DimValue>(values[i]));
    }
}

void checkShapes(ShapeQuery const& query)
{
    {
        FakeExprBuilderImpl impl;
        DimsExprs in[2];
        fill(impl, in[0], {2, 3, 5, 7});
        fill(impl, in[1], {2, 11, 13, 2});
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
        // Dynamic shapes: every dimension symbolic but the grid's last; Y's must be the very expressions of X and grid.
        FakeExprBuilderImpl impl;
        DimsExprs in[2];
        fill(impl, in[0], {-1, -1, -1, -1});
        fill(impl, in[1], {-1, -1, -1, 2});
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
        // Channels known, the rest symbolic (the usual dynamic-batch, dynamic-size export).
        FakeExprBuilderImpl impl;
        DimsExprs in[2];
        fill(impl, in[0], {-1, 64, -1, -1});
        fill(impl, in[1], {-1, -1, -1, 2});
        DimsExprs out{};
        bool const ok = query(impl, in, 2, out);
        bool const good = ok && out.nbDims == 4 && out.d[1] != nullptr && out.d[1]->isConstant()
            && out.d[1]->getConstantValue() == 64 && !out.d[0]->isConstant() && !out.d[2]->isConstant()
            && !out.d[3]->isConstant();
        report("shapes", "mixed_dims", good, "X (N, 64, H, W), grid (N, Ho, Wo, 2) -> Y (N, 64, Ho, Wo)");
    }
    {
        FakeExprBuilderImpl impl;
        DimsExprs in[2];
        DimsExprs out{};
        fill(impl, in[0], {2, 3, 5, 7});
        fill(impl, in[1], {2, 4, 6, 3});
        bool const lastNotTwo = query(impl, in, 2, out);
        fill(impl, in[1], {3, 4, 6, 2});
        bool const batchDiffers = query(impl, in, 2, out);
        fill(impl, in[1], {-1, 4, 6, 2});
        bool const batchSymbolic = query(impl, in, 2, out);
        report("shapes", "constant_mismatch", !lastNotTwo && !batchDiffers && batchSymbolic,
            std::string("grid (2,4,6,3) ") + (lastNotTwo ? "accepted" : "refused") + ", grid N 3 vs X N 2 "
                + (batchDiffers ? "accepted" : "refused") + ", symbolic grid N " + (batchSymbolic ? "accepted" : "refused"));
    }
    {
        FakeExprBuilderImpl impl;
        DimsExprs in[2];
        fill(impl, in[0], {4, 4, 4});
        fill(impl, in[1], {4, 4, 4, 2});
        DimsExprs out{};
        bool const rank3 = query(impl, in, 2, out);
        fill(impl, in[0], {4, 4, 4, 4});
        bool const oneInput = query(impl, in, 1, out);
        report("shapes", "malformed_inputs", !rank3 && !oneInput,
            std::string("rank-3 X ") + (rank3 ? "accepted" : "refused") + ", one input " + (oneInput ? "accepted" : "refused"));
    }
}

// ---------------------------------------------------------------------------------------------
// enqueue, through either interface: (inputDesc, outputDesc, inputs, outputs) -> status.
// ---------------------------------------------------------------------------------------------

using Enqueue = std::function<int32_t(PluginTensorDesc const*, PluginTensorDesc const*, void const* const*, void* const*)>;

constexpr char const* kLaunchFailure = "DAttnGridSample: kernel launch failed";

struct EnqueueCase
{
    char const* name;
    std::function<void(Problem&, void const**, void**)> spoil;
    bool nullInputDesc;
    bool nullOutputDesc;
    bool nullInputs;
    bool nullOutputs;
};

// -1, a logged reason, and no kernel launch (whose failure would be logged instead).
Outcome refusedBeforeLaunch(Enqueue const& enqueue, EnqueueCase const& c)
{
    Problem problem = referenceProblem();
    static float xBuffer[2 * 3 * 5 * 7];
    static float gridBuffer[2 * 4 * 6 * 2];
    static float yBuffer[2 * 3 * 4 * 6];
    void const* inputs[2] = {xBuffer, gridBuffer};
    void* outputs[1] = {yBuffer};
    if (c.spoil)
    {
        c.spoil(problem, inputs, outputs);
    }
    int const errors = globalLogger().errors();
    int32_t const status = enqueue(c.nullInputDesc ? nullptr : problem.in, c.nullOutputDesc ? nullptr : problem.out,
        c.nullInputs ? nullptr : inputs, c.nullOutputs ? nullptr : outputs);
    bool const logged = globalLogger().errors() > errors;
    bool const beforeLaunch = logged && !startsWith(globalLogger().lastMessage(), kLaunchFailure);
    return {status == -1 && beforeLaunch,
        "status " + std::to_string(status) + (logged ? ", logged: " + std::string(globalLogger().lastMessage()) : ", nothing logged")};
}

void checkEnqueue(Enqueue const& enqueue, int32_t alignCorners)
{
    std::vector<EnqueueCase> const cases{
        {"null_input_descs", nullptr, true, false, false, false},
        {"null_output_descs", nullptr, false, true, false, false},
        {"null_input_array", nullptr, false, false, true, false},
        {"null_output_array", nullptr, false, false, false, true},
        {"null_x", [](Problem&, void const** in, void**) { in[0] = nullptr; }, false, false, false, false},
        {"null_grid", [](Problem&, void const** in, void**) { in[1] = nullptr; }, false, false, false, false},
        {"null_y", [](Problem&, void const**, void** out) { out[0] = nullptr; }, false, false, false, false},
        {"x_rank_3", [](Problem& p, void const**, void**) { p.in[0].dims.nbDims = 3; }, false, false, false, false},
        {"grid_last_dim_3", [](Problem& p, void const**, void**) { p.in[1].dims.d[3] = 3; }, false, false, false, false},
        {"grid_batch_differs", [](Problem& p, void const**, void**) { p.in[1].dims.d[0] = 3; }, false, false, false, false},
        {"y_channels_differ", [](Problem& p, void const**, void**) { p.out[0].dims.d[1] = 4; }, false, false, false, false},
        {"y_height_width_swapped",
            [](Problem& p, void const**, void**) {
                p.out[0].dims.d[2] = 6;
                p.out[0].dims.d[3] = 4;
            },
            false, false, false, false},
        {"unknown_dim", [](Problem& p, void const**, void**) { p.in[0].dims.d[2] = -1; }, false, false, false, false},
        {"negative_dim", [](Problem& p, void const**, void**) { p.in[0].dims.d[3] = -5; }, false, false, false, false},
        {"int8",
            [](Problem& p, void const**, void**) {
                p.in[0].type = p.in[1].type = p.out[0].type = DataType::kINT8;
            },
            false, false, false, false},
        {"int32",
            [](Problem& p, void const**, void**) {
                p.in[0].type = p.in[1].type = p.out[0].type = DataType::kINT32;
            },
            false, false, false, false},
        {"fp32_x_fp16_grid", [](Problem& p, void const**, void**) { p.in[1].type = DataType::kHALF; }, false, false, false, false},
        {"fp16_x_fp32_y",
            [](Problem& p, void const**, void**) { p.in[0].type = p.in[1].type = DataType::kHALF; }, false, false, false, false},
        {"chw32_x", [](Problem& p, void const**, void**) { p.in[0].format = TensorFormat::kCHW32; }, false, false, false, false},
        {"hwc8_y", [](Problem& p, void const**, void**) { p.out[0].format = TensorFormat::kHWC8; }, false, false, false, false},
    };
    for (EnqueueCase const& c : cases)
    {
        Outcome const outcome = refusedBeforeLaunch(enqueue, c);
        report("enqueue", c.name, outcome.ok, outcome.detail);
    }

    {
        // An empty Y: nothing to do, whatever the pointers; TensorRT passes null for empty tensors.
        Problem problem = referenceProblem();
        problem.in[1].dims.d[1] = 0;
        problem.out[0].dims.d[2] = 0;
        void const* inputs[2] = {nullptr, nullptr};
        void* outputs[1] = {nullptr};
        int const errors = globalLogger().errors();
        int32_t const status = enqueue(problem.in, problem.out, inputs, outputs);
        report("enqueue", "empty_output", status == 0 && globalLogger().errors() == errors,
            "Ho = 0, null pointers: status " + std::to_string(status));
    }

    // A right call reaches the kernel: with a GPU it samples as torch does; without one the launch fails.
    int deviceCount{0};
    bool const gpu = cudaGetDeviceCount(&deviceCount) == cudaSuccess && deviceCount > 0;
    cudaGetLastError();
    Problem problem = referenceProblem();
    std::vector<float> x(2 * 3 * 5 * 7);
    std::vector<float> grid(2 * 4 * 6 * 2);
    for (size_t i = 0; i < x.size(); ++i)
    {
        x[i] = static_cast<float>((i * 37) % 101) / 10.0F - 5.0F;
    }
    for (size_t i = 0; i < grid.size(); ++i)
    {
        grid[i] = static_cast<float>((i * 53) % 97) / 40.0F - 1.2F; // some samples fall outside
    }
    if (!gpu)
    {
        std::vector<float> y(2 * 3 * 4 * 6);
        void const* inputs[2] = {x.data(), grid.data()};
        void* outputs[1] = {y.data()};
        int32_t const status = enqueue(problem.in, problem.out, inputs, outputs);
        report("enqueue", "right_call_reaches_kernel", status == -1 && startsWith(globalLogger().lastMessage(), kLaunchFailure),
            "no GPU: status " + std::to_string(status) + ", logged: " + globalLogger().lastMessage());
        return;
    }
    void* deviceX{nullptr};
    void* deviceGrid{nullptr};
    void* deviceY{nullptr};
    std::vector<float> y(2 * 3 * 4 * 6, -7.0F);
    bool ok = cudaMalloc(&deviceX, x.size() * sizeof(float)) == cudaSuccess
        && cudaMalloc(&deviceGrid, grid.size() * sizeof(float)) == cudaSuccess
        && cudaMalloc(&deviceY, y.size() * sizeof(float)) == cudaSuccess
        && cudaMemcpy(deviceX, x.data(), x.size() * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess
        && cudaMemcpy(deviceGrid, grid.data(), grid.size() * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess;
    void const* inputs[2] = {deviceX, deviceGrid};
    void* outputs[1] = {deviceY};
    int32_t const status = ok ? enqueue(problem.in, problem.out, inputs, outputs) : -2;
    ok = status == 0 && cudaDeviceSynchronize() == cudaSuccess
        && cudaMemcpy(y.data(), deviceY, y.size() * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess;
    cudaFree(deviceX);
    cudaFree(deviceGrid);
    cudaFree(deviceY);
    float worst{0.0F};
    for (int64_t n = 0; ok && n < 2; ++n)
    {
        for (int64_t p = 0; p < 4 * 6; ++p)
        {
            float const* xy = grid.data() + 2 * (n * 24 + p);
            dattn::BilinearTaps const taps = dattn::computeBilinearTaps(xy[0], xy[1], 5, 7, alignCorners != 0);
            for (int64_t c = 0; c < 3; ++c)
            {
                float const expected
                    = dattn::sampleBilinear(taps, x.data() + (n * 3 + c) * 35, [](float value) { return value; });
                worst = std::fmax(worst, std::fabs(expected - y[(n * 3 + c) * 24 + p]));
            }
        }
    }
    report("enqueue", "right_call_reaches_kernel", ok && worst <= 1e-5F,
        "GPU: status " + std::to_string(status) + ", max |Y - host reference| = " + std::to_string(worst));
}

// ---------------------------------------------------------------------------------------------
// Logging: errors go to TensorRT's global logger, and on 8.6+ to the one handed over through setLoggerFinder.
// ---------------------------------------------------------------------------------------------

#if DATTN_TRT_HAS_LOGGER_FINDER
class FixedLoggerFinder : public ILoggerFinder
{
public:
    explicit FixedLoggerFinder(ILogger* logger)
        : mLogger(logger)
    {
    }
    ~FixedLoggerFinder() override = default;
    ILogger* findLogger() override
    {
        return mLogger;
    }

private:
    ILogger* mLogger;
};
#endif

// provoke() makes the plugin log one error.
void checkLogging(std::function<void()> const& provoke)
{
    int const before = globalLogger().errors();
    provoke();
    report("logging", "global_logger", globalLogger().errors() == before + 1,
        std::string("getLogger() received: ") + globalLogger().lastMessage());
#if DATTN_TRT_HAS_LOGGER_FINDER
    driver::CapturingLogger handedOver;
    FixedLoggerFinder finder(&handedOver);
    setLoggerFinder(&finder);
    int const globalBefore = globalLogger().errors();
    provoke();
    setLoggerFinder(nullptr);
    provoke();
    bool const ok = handedOver.errors() == 1 && globalLogger().errors() == globalBefore + 1;
    report("logging", "logger_finder", ok,
        std::string("with a finder its logger received ") + std::to_string(handedOver.errors()) + " (\""
            + handedOver.lastMessage() + "\"), the global one " + std::to_string(globalLogger().errors() - globalBefore)
            + " after the finder was withdrawn");
#endif
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

// What an engine stores of a plugin and hands back to createPlugin(kRUNTIME): copies of the serialized fields.
struct SerializedFields
{
    explicit SerializedFields(IPluginV3* plugin)
    {
        PluginFieldCollection const* fields = runtimeOf(plugin)->getFieldsToSerialize();
        for (int32_t i = 0; i < fields->nbFields; ++i)
        {
            names.emplace_back(fields->fields[i].name);
            unsigned char const* data = static_cast<unsigned char const*>(fields->fields[i].data);
            bytes.emplace_back(data, data + sizeof(int32_t) * fields->fields[i].length);
        }
        for (size_t i = 0; i < names.size(); ++i)
        {
            copied.emplace_back(names[i].c_str(), bytes[i].data(), PluginFieldType::kINT32, 1);
        }
        collection.nbFields = static_cast<int32_t>(copied.size());
        collection.fields = copied.data();
    }
    SerializedFields(SerializedFields const&) = delete;
    SerializedFields& operator=(SerializedFields const&) = delete;

    std::vector<std::string> names;
    std::vector<std::vector<unsigned char>> bytes;
    std::vector<PluginField> copied;
    PluginFieldCollection collection{};
};

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
        std::string detail;
        int32_t const stored = serializedAlignCorners(built.get(), nullptr, detail);
        report("roundtrip", "fields_to_serialize" + suffix, stored == alignCorners, detail);
        if (stored < 0)
        {
            continue;
        }
        SerializedFields serialized(built.get());
        built.reset(); // the engine outlives the builder's plugin

        std::unique_ptr<IPluginV3> restored(
            creator.createPlugin("gs_runtime", &serialized.collection, TensorRTPhase::kRUNTIME));
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

bool supportsFormat(IPluginV3OneBuild* build, int32_t pos, PluginTensorDesc const* descs, int32_t nbInputs, int32_t nbOutputs)
{
    DynamicPluginTensorDesc dynamic[4];
    PluginTensorDesc const padded[4] = {descs[0], descs[1], descs[2], descs[2]};
    toDynamic(padded, 4, dynamic);
    return build->supportsFormatCombination(pos, dynamic, nbInputs, nbOutputs);
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
        return supportsFormat(build, pos, descs, nbInputs, nbOutputs);
    });
}

int32_t outputShapes(IPluginV3OneBuild* build, FakeExprBuilderImpl& impl, DimsExprs const* inputs, int32_t nbInputs, DimsExprs& out)
{
    FakeExprBuilder builder(impl);
    return build->getOutputShapes(inputs, nbInputs, nullptr, 0, &out, 1, builder);
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
        return outputShapes(build, impl, inputs, nbInputs, out) == 0;
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
    DataType in[2] = {DataType::kFLOAT, DataType::kFLOAT};
    DataType out[2];
    types = types && build->getOutputDataTypes(out, 2, in, 2) != 0 && build->getOutputDataTypes(nullptr, 1, in, 2) != 0;
    report("shapes", "output_type", types, detail + "; 2 outputs or null refused");
}

int32_t configure(IPluginV3OneBuild* build, Problem const& problem, int32_t nbInputs = 2, int32_t nbOutputs = 1)
{
    DynamicPluginTensorDesc dynamic[3];
    PluginTensorDesc const descs[3] = {problem.in[0], problem.in[1], problem.out[0]};
    toDynamic(descs, 3, dynamic);
    return build->configurePlugin(dynamic, nbInputs, dynamic + 2, nbOutputs);
}

void runConfigure(GridSamplePluginCreator& creator)
{
    Attributes attributes(1);
    std::unique_ptr<IPluginV3> plugin(creator.createPlugin("gs", &attributes.collection, TensorRTPhase::kBUILD));
    IPluginV3OneBuild* build = buildOf(plugin.get());
    IPluginV3OneRuntime* runtime = runtimeOf(plugin.get());
    if (build == nullptr || runtime == nullptr)
    {
        report("configure", "plugin", false, "no plugin / capabilities");
        return;
    }
    bool const rightTypes = configure(build, referenceProblem(DataType::kFLOAT)) == 0
        && configure(build, referenceProblem(DataType::kHALF)) == 0;
    report("configure", "right_tensors", rightTypes, "fp32 and fp16, batch and sizes dynamic (-1): 0");

    Problem mixed = referenceProblem();
    mixed.in[1].type = DataType::kHALF;
    Problem lastDim = referenceProblem();
    lastDim.in[1].dims.d[3] = 3;
    Problem channels = referenceProblem();
    channels.out[0].dims.d[1] = 5;
    Problem integers = referenceProblem(DataType::kINT32);
    bool const refused = configure(build, mixed) == -1 && configure(build, lastDim) == -1
        && configure(build, channels) == -1 && configure(build, integers) == -1;
    report("configure", "wrong_tensors", refused, "fp32 X with fp16 grid, grid (.., 3), Y with 5 channels for 3, int32: -1");
    bool const counts = configure(build, referenceProblem(), 1, 1) == -1 && configure(build, referenceProblem(), 2, 2) == -1
        && build->configurePlugin(nullptr, 2, nullptr, 1) == -1;
    report("configure", "wrong_counts", counts, "1 input, 2 outputs, null descriptors: -1");

    DynamicPluginTensorDesc dynamic[3];
    Problem problem = referenceProblem();
    PluginTensorDesc const descs[3] = {problem.in[0], problem.in[1], problem.out[0]};
    toDynamic(descs, 3, dynamic);
    size_t const workspace = build->getWorkspaceSize(dynamic, 2, dynamic + 2, 1);
    report("configure", "workspace_size", workspace == 0, std::to_string(workspace) + " bytes (the kernel needs none)");

    Problem wrongY = referenceProblem();
    wrongY.out[0].dims.d[2] = 5;
    bool const shapeChange = runtime->onShapeChange(problem.in, 2, problem.out, 1) == 0
        && runtime->onShapeChange(wrongY.in, 2, wrongY.out, 1) == -1 && runtime->onShapeChange(problem.in, 1, problem.out, 1) == -1
        && runtime->onShapeChange(nullptr, 2, problem.out, 1) == -1;
    report("configure", "on_shape_change", shapeChange, "right shapes 0; Y (2,3,5,6) for (2,3,4,6), 1 input, null: -1");
}

// The plugin the engine runs: created for the build, configured, cloned, serialized, re-created and attached.
std::unique_ptr<IPluginV3> enginePlugin(GridSamplePluginCreator& creator, int32_t alignCorners, std::string& detail)
{
    Attributes attributes(alignCorners);
    std::unique_ptr<IPluginV3> built(creator.createPlugin("gs", &attributes.collection, TensorRTPhase::kBUILD));
    if (!built || configure(buildOf(built.get()), referenceProblem()) != 0)
    {
        detail = "createPlugin(kBUILD) or configurePlugin failed";
        return nullptr;
    }
    std::unique_ptr<IPluginV3> cloned(built->clone());
    built.reset();
    if (!cloned)
    {
        detail = "clone failed";
        return nullptr;
    }
    SerializedFields serialized(cloned.get());
    cloned.reset();
    std::unique_ptr<IPluginV3> restored(creator.createPlugin("gs", &serialized.collection, TensorRTPhase::kRUNTIME));
    std::unique_ptr<IPluginV3> attached(restored ? runtimeOf(restored.get())->attachToContext(nullptr) : nullptr);
    Problem problem = referenceProblem();
    if (!attached || runtimeOf(attached.get())->onShapeChange(problem.in, 2, problem.out, 1) != 0)
    {
        detail = "createPlugin(kRUNTIME), attachToContext or onShapeChange failed";
        return nullptr;
    }
    detail = "build -> configurePlugin -> clone -> getFieldsToSerialize -> createPlugin(kRUNTIME) -> attachToContext -> onShapeChange";
    return attached;
}

void runEnqueue(GridSamplePluginCreator& creator)
{
    std::string detail;
    std::unique_ptr<IPluginV3> plugin = enginePlugin(creator, 1, detail);
    report("enqueue", "engine_plugin", plugin != nullptr, detail);
    if (!plugin)
    {
        return;
    }
    IPluginV3OneRuntime* runtime = runtimeOf(plugin.get());
    checkEnqueue(
        [runtime](PluginTensorDesc const* in, PluginTensorDesc const* out, void const* const* inputs, void* const* outputs) {
            return runtime->enqueue(in, out, inputs, outputs, nullptr, nullptr);
        },
        1);
}

void runExceptions(GridSamplePluginCreator& creator)
{
    Attributes attributes(1);
    std::unique_ptr<IPluginV3> plugin(creator.createPlugin("gs", &attributes.collection, TensorRTPhase::kBUILD));
    if (!plugin)
    {
        report("exceptions", "plugin", false, "createPlugin returned null");
        return;
    }
    SerializedFields serialized(plugin.get());
    IPluginV3* const p = plugin.get();

    runIsolated("exceptions", "createPlugin.build", [&] {
        return allocationFailuresHandled([&] {
            std::unique_ptr<IPluginV3> made(creator.createPlugin("gs", &attributes.collection, TensorRTPhase::kBUILD));
            return made != nullptr;
        });
    });
    runIsolated("exceptions", "createPlugin.runtime", [&] {
        return allocationFailuresHandled([&] {
            std::unique_ptr<IPluginV3> made(creator.createPlugin("gs", &serialized.collection, TensorRTPhase::kRUNTIME));
            return made != nullptr;
        });
    });
    runIsolated("exceptions", "clone", [&] {
        return allocationFailuresHandled([&] {
            std::unique_ptr<IPluginV3> made(p->clone());
            return made != nullptr;
        });
    });
    runIsolated("exceptions", "attachToContext", [&] {
        return allocationFailuresHandled([&] {
            std::unique_ptr<IPluginV3> made(runtimeOf(p)->attachToContext(nullptr));
            return made != nullptr;
        });
    });

    // The rest allocates nothing, so nothing can throw.
    runIsolated("exceptions", "getFieldsToSerialize.allocates_nothing", [&] {
        return allocatesNothing([&] {
            PluginFieldCollection const* fields = runtimeOf(p)->getFieldsToSerialize();
            return fields != nullptr && fields->nbFields == 1 && *static_cast<int32_t const*>(fields->fields[0].data) == 1;
        });
    });
    runIsolated("exceptions", "getFieldNames.allocates_nothing",
        [&] { return allocatesNothing([&] { return fieldNamesAreRight(creator.getFieldNames()); }); });
    runIsolated("exceptions", "getCreators.allocates_nothing", [&] {
        return allocatesNothing([] {
            int32_t count{0};
            return getCreators(count) != nullptr && count == 1;
        });
    });
    runIsolated("exceptions", "build_methods.allocate_nothing", [&] {
        FakeExprBuilderImpl impl;
        DimsExprs in[2];
        fill(impl, in[0], {-1, 3, -1, -1});
        fill(impl, in[1], {-1, -1, -1, 2});
        Problem problem = referenceProblem();
        PluginTensorDesc const descs[3] = {problem.in[0], problem.in[1], problem.out[0]};
        DynamicPluginTensorDesc dynamic[3];
        toDynamic(descs, 3, dynamic);
        IPluginV3OneBuild* build = buildOf(p);
        return allocatesNothing([&] {
            DimsExprs out{};
            DataType types[1];
            DataType const inTypes[2] = {DataType::kFLOAT, DataType::kFLOAT};
            return outputShapes(build, impl, in, 2, out) == 0 && build->supportsFormatCombination(2, dynamic, 2, 1)
                && build->getOutputDataTypes(types, 1, inTypes, 2) == 0 && build->configurePlugin(dynamic, 2, dynamic + 2, 1) == 0
                && build->getWorkspaceSize(dynamic, 2, dynamic + 2, 1) == 0
                && runtimeOf(p)->onShapeChange(problem.in, 2, problem.out, 1) == 0;
        });
    });
    runIsolated("exceptions", "refused_enqueue.allocates_nothing", [&] {
        Problem problem = referenceProblem(DataType::kINT8);
        float buffer[4] = {};
        void const* inputs[2] = {buffer, buffer};
        void* outputs[1] = {buffer};
        return allocatesNothing([&] { return runtimeOf(p)->enqueue(problem.in, problem.out, inputs, outputs, nullptr, nullptr) == -1; });
    });
}

void runLogging(GridSamplePluginCreator& creator)
{
    checkLogging([&creator] {
        Attributes missing(0, false);
        std::unique_ptr<IPluginV3> none(creator.createPlugin("bad", &missing.collection, TensorRTPhase::kBUILD));
    });
}

int runAll()
{
    GridSamplePluginCreator creator;
    std::printf("INFO\tTensorRT %d.%d, interface IPluginV3 (IPluginV3OneCore/Build/Runtime), %d types x %d formats\n",
        NV_TENSORRT_MAJOR, NV_TENSORRT_MINOR, kNbTypes, kNbFormats);
    runIdentity(creator);
    runRoundTrip(creator);
    runFormats(creator);
    runShapes(creator);
    runConfigure(creator);
    runEnqueue(creator);
    runExceptions(creator);
    runLogging(creator);
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

IPluginV2DynamicExt* dynamicOf(PluginPtr const& plugin)
{
    return dynamic_cast<IPluginV2DynamicExt*>(plugin.get());
}

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
    report("identity", "plugin.is_dynamic_ext", dynamicOf(plugin) != nullptr, "createPlugin returns an IPluginV2DynamicExt");

#if DATTN_TRT_HAS_LOGGER_FINDER
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
        PluginPtr cloned(dynamicOf(restored)->clone());
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
    IPluginV2DynamicExt* dynamic = dynamicOf(plugin);
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
    IPluginV2DynamicExt* dynamic = dynamicOf(plugin);
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
    DataType const in[2] = {DataType::kHALF, DataType::kHALF};
    int const before = globalLogger().errors();
    dynamic->getOutputDataType(1, in, 2);
    dynamic->getOutputDataType(0, nullptr, 2);
    types = types && globalLogger().errors() == before + 2;
    report("shapes", "output_type", types, detail + "; output 1 or null types logged");
}

// configurePlugin returns nothing on 8.x: whether it objected shows in the log.
bool configureLogsError(IPluginV2DynamicExt* dynamic, Problem const& problem, int32_t nbInputs = 2, int32_t nbOutputs = 1)
{
    DynamicPluginTensorDesc desc[3];
    PluginTensorDesc const descs[3] = {problem.in[0], problem.in[1], problem.out[0]};
    toDynamic(descs, 3, desc);
    int const before = globalLogger().errors();
    dynamic->configurePlugin(desc, nbInputs, desc + 2, nbOutputs);
    return globalLogger().errors() > before;
}

void runConfigure(GridSamplePluginLegacyCreator& creator)
{
    Attributes attributes(1);
    PluginPtr plugin(creator.createPlugin("gs", &attributes.collection));
    IPluginV2DynamicExt* dynamic = dynamicOf(plugin);
    if (dynamic == nullptr)
    {
        report("configure", "plugin", false, "no IPluginV2DynamicExt");
        return;
    }
    bool const right = !configureLogsError(dynamic, referenceProblem(DataType::kFLOAT))
        && !configureLogsError(dynamic, referenceProblem(DataType::kHALF));
    report("configure", "right_tensors", right, "fp32 and fp16, batch and sizes dynamic (-1): nothing logged");

    Problem mixed = referenceProblem();
    mixed.in[1].type = DataType::kHALF;
    Problem lastDim = referenceProblem();
    lastDim.in[1].dims.d[3] = 3;
    Problem channels = referenceProblem();
    channels.out[0].dims.d[1] = 5;
    Problem integers = referenceProblem(DataType::kINT32);
    bool const refused = configureLogsError(dynamic, mixed) && configureLogsError(dynamic, lastDim)
        && configureLogsError(dynamic, channels) && configureLogsError(dynamic, integers);
    report("configure", "wrong_tensors", refused,
        std::string("fp32 X with fp16 grid, grid (.., 3), Y with 5 channels for 3, int32: logged; last: ")
            + globalLogger().lastMessage());
    bool const counts = configureLogsError(dynamic, referenceProblem(), 1, 1) && configureLogsError(dynamic, referenceProblem(), 2, 2);
    report("configure", "wrong_counts", counts, "1 input, 2 outputs: logged");

    Problem problem = referenceProblem();
    size_t const workspace = dynamic->getWorkspaceSize(problem.in, 2, problem.out, 1);
    report("configure", "workspace_size", workspace == 0, std::to_string(workspace) + " bytes (the kernel needs none)");
    report("configure", "initialize", dynamic->initialize() == 0, "initialize() = 0");
}

// The plugin the engine runs: created for the build, configured, cloned, serialized, deserialized, initialized.
PluginPtr enginePlugin(GridSamplePluginLegacyCreator& creator, int32_t alignCorners, std::string& detail)
{
    Attributes attributes(alignCorners);
    PluginPtr built(creator.createPlugin("gs", &attributes.collection));
    if (!built || configureLogsError(dynamicOf(built), referenceProblem()))
    {
        detail = "createPlugin or configurePlugin failed";
        return nullptr;
    }
    PluginPtr cloned(dynamicOf(built)->clone());
    built.reset();
    if (!cloned)
    {
        detail = "clone failed";
        return nullptr;
    }
    std::vector<unsigned char> const bytes = serialized(*cloned);
    cloned.reset();
    PluginPtr restored(creator.deserializePlugin("gs", bytes.data(), bytes.size()));
    if (!restored || restored->initialize() != 0)
    {
        detail = "deserializePlugin or initialize failed";
        return nullptr;
    }
    detail = "createPlugin -> configurePlugin -> clone -> serialize -> deserializePlugin -> initialize";
    return restored;
}

void runEnqueue(GridSamplePluginLegacyCreator& creator)
{
    std::string detail;
    PluginPtr plugin = enginePlugin(creator, 1, detail);
    report("enqueue", "engine_plugin", plugin != nullptr, detail);
    if (!plugin)
    {
        return;
    }
    IPluginV2DynamicExt* dynamic = dynamicOf(plugin);
    checkEnqueue(
        [dynamic](PluginTensorDesc const* in, PluginTensorDesc const* out, void const* const* inputs, void* const* outputs) {
            return dynamic->enqueue(in, out, inputs, outputs, nullptr, nullptr);
        },
        1);
    plugin->terminate();
}

void runExceptions(GridSamplePluginLegacyCreator& creator)
{
    Attributes attributes(1);
    PluginPtr plugin(creator.createPlugin("gs", &attributes.collection));
    PluginPtr longNamed(creator.createPlugin("gs", &attributes.collection));
    if (!plugin || !longNamed)
    {
        report("exceptions", "plugin", false, "createPlugin returned null");
        return;
    }
    longNamed->setPluginNamespace(kLongNamespace);
    std::vector<unsigned char> const bytes = serialized(*plugin);
    IPluginV2DynamicExt* const p = dynamicOf(plugin);

    runIsolated("exceptions", "createPlugin", [&] {
        return allocationFailuresHandled([&] {
            PluginPtr made(creator.createPlugin("gs", &attributes.collection));
            return made != nullptr;
        });
    });
    runIsolated("exceptions", "deserializePlugin", [&] {
        return allocationFailuresHandled([&] {
            PluginPtr made(creator.deserializePlugin("gs", bytes.data(), bytes.size()));
            return made != nullptr;
        });
    });
    runIsolated("exceptions", "clone", [&] {
        return allocationFailuresHandled([&] {
            PluginPtr made(p->clone());
            return made != nullptr;
        });
    });
    // A namespace too long to be kept inline: the copy allocates too.
    runIsolated("exceptions", "clone.long_namespace", [&] {
        return allocationFailuresHandled([&] {
            PluginPtr made(dynamicOf(longNamed)->clone());
            return made != nullptr && sameString(made->getPluginNamespace(), kLongNamespace);
        });
    });
    runIsolated("exceptions", "setPluginNamespace", [&] {
        return allocationFailuresHandled([&] {
            p->setPluginNamespace(kLongNamespace); // a failure leaves "dattn"
            return sameString(p->getPluginNamespace(), kLongNamespace);
        });
    });
    runIsolated("exceptions", "creator.setPluginNamespace", [&] {
        return allocationFailuresHandled([&] {
            creator.setPluginNamespace(kLongNamespace);
            return sameString(creator.getPluginNamespace(), kLongNamespace);
        });
    });
    runIsolated("exceptions", "createPlugin.long_namespace", [&] {
        creator.setPluginNamespace(kLongNamespace); // in the child only
        return allocationFailuresHandled([&] {
            PluginPtr made(creator.createPlugin("gs", &attributes.collection));
            return made != nullptr && sameString(made->getPluginNamespace(), kLongNamespace);
        });
    });

    runIsolated("exceptions", "serialize.allocates_nothing", [&] {
        return allocatesNothing([&] {
            unsigned char buffer[8] = {};
            p->serialize(buffer);
            return p->getSerializationSize() == sizeof(int32_t) && buffer[0] == 1;
        });
    });
    runIsolated("exceptions", "getFieldNames.allocates_nothing",
        [&] { return allocatesNothing([&] { return fieldNamesAreRight(creator.getFieldNames()); }); });
#if DATTN_TRT_HAS_LOGGER_FINDER
    runIsolated("exceptions", "getPluginCreators.allocates_nothing", [&] {
        return allocatesNothing([] {
            int32_t count{0};
            return getPluginCreators(count) != nullptr && count == 1;
        });
    });
#endif
    runIsolated("exceptions", "build_methods.allocate_nothing", [&] {
        FakeExprBuilderImpl impl;
        DimsExprs in[2];
        fill(impl, in[0], {-1, 3, -1, -1});
        fill(impl, in[1], {-1, -1, -1, 2});
        Problem problem = referenceProblem();
        PluginTensorDesc const descs[3] = {problem.in[0], problem.in[1], problem.out[0]};
        DynamicPluginTensorDesc dynamic[3];
        toDynamic(descs, 3, dynamic);
        return allocatesNothing([&] {
            FakeExprBuilder builder(impl);
            DimsExprs const out = p->getOutputDimensions(0, in, 2, builder);
            p->configurePlugin(dynamic, 2, dynamic + 2, 1);
            DataType const inTypes[2] = {DataType::kFLOAT, DataType::kFLOAT};
            return out.nbDims == 4 && p->supportsFormatCombination(2, descs, 2, 1)
                && p->getOutputDataType(0, inTypes, 2) == DataType::kFLOAT && p->getWorkspaceSize(descs, 2, descs + 2, 1) == 0;
        });
    });
    runIsolated("exceptions", "refused_enqueue.allocates_nothing", [&] {
        Problem problem = referenceProblem(DataType::kINT8);
        float buffer[4] = {};
        void const* inputs[2] = {buffer, buffer};
        void* outputs[1] = {buffer};
        return allocatesNothing([&] { return p->enqueue(problem.in, problem.out, inputs, outputs, nullptr, nullptr) == -1; });
    });
}

void runLogging(GridSamplePluginLegacyCreator& creator)
{
    checkLogging([&creator] {
        Attributes missing(0, false);
        PluginPtr none(creator.createPlugin("bad", &missing.collection));
    });
}

int runAll()
{
    GridSamplePluginLegacyCreator creator;
    std::printf("INFO\tTensorRT %d.%d, interface IPluginV2DynamicExt, %d types x %d formats\n", NV_TENSORRT_MAJOR,
        NV_TENSORRT_MINOR, kNbTypes, kNbFormats);
    runIdentity(creator);
    runRoundTrip(creator);
    runFormats(creator);
    runShapes(creator);
    runConfigure(creator);
    runEnqueue(creator);
    runExceptions(creator);
    runLogging(creator);
    return 0;
}
#endif

} // namespace

int main()
{
    runAll();
    std::printf("SUMMARY\t%d checks, %d failed\n", driver::checksRun(), driver::checksFailed());
    return driver::checksFailed() == 0 ? 0 : 1;
}
