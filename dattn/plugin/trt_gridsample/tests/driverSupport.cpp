// SPDX-FileCopyrightText: Copyright (c) dattn contributors
// SPDX-License-Identifier: AGPL-3.0-or-later
#include "driverSupport.h"

namespace driver
{
namespace
{
int gChecks = 0;
int gFailures = 0;
} // namespace

void report(char const* group, std::string const& name, bool ok, std::string const& detail)
{
    countReported(ok);
    std::printf("CHECK\t%s\t%s\t%s\t%s\n", group, name.c_str(), ok ? "PASS" : "FAIL", detail.c_str());
    std::fflush(stdout);
}

void countReported(bool ok)
{
    ++gChecks;
    gFailures += ok ? 0 : 1;
}

int checksRun()
{
    return gChecks;
}

int checksFailed()
{
    return gFailures;
}

void CapturingLogger::log(Severity severity, nvinfer1::AsciiChar const* message) noexcept
{
    if (severity <= Severity::kERROR)
    {
        ++mErrors;
    }
    std::snprintf(mLast, sizeof(mLast), "%s", message != nullptr ? message : "(null)");
}

CapturingLogger& globalLogger()
{
    static CapturingLogger logger;
    return logger;
}

nvinfer1::IDimensionExpr const* FakeExprBuilderImpl::constant(DimValue value)
{
    ++mCalls;
    return make(true, value);
}

nvinfer1::IDimensionExpr const* FakeExprBuilderImpl::operation(
    nvinfer1::DimensionOperation op, nvinfer1::IDimensionExpr const& first, nvinfer1::IDimensionExpr const& second)
{
    using nvinfer1::DimensionOperation;
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
nvinfer1::IDimensionExpr const* FakeExprBuilderImpl::declareSizeTensor(
    int32_t, nvinfer1::IDimensionExpr const&, nvinfer1::IDimensionExpr const&)
{
    ++mCalls;
    return make(false, 0);
}
#endif

nvinfer1::IDimensionExpr const* FakeExprBuilderImpl::make(bool constant, DimValue value)
{
    mPool.emplace_back(new FakeDimension(constant, value));
    return mPool.back().get();
}

} // namespace driver

// libnvinfer's global logger, as the plugin finds it: the plugin refers to getLogger weakly, so this
// definition is the one it calls here.
extern "C" nvinfer1::ILogger* getLogger() noexcept
{
    return &driver::globalLogger();
}
