// SPDX-FileCopyrightText: Copyright (c) dattn contributors
// SPDX-License-Identifier: AGPL-3.0-or-later
//
// What the host driver needs besides the plugin: one line per check, checks run in a child process (so a
// std::terminate is reported as a failure rather than ending the run), a logger that records what the
// plugin logs (the driver's getLogger(), which the plugin's weak reference picks up as it would pick up
// libnvinfer's), allocation-failure checks, and an IExprBuilder of its own.
#ifndef DATTN_DRIVER_SUPPORT_H
#define DATTN_DRIVER_SUPPORT_H

#include "allocationFaults.h"

#include "NvInferRuntime.h"

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace driver
{

struct Outcome
{
    bool ok;
    std::string detail;
};

// Prints "CHECK\t<group>\t<name>\t<PASS|FAIL>\t<detail>" and counts it.
void report(char const* group, std::string const& name, bool ok, std::string const& detail = "");
// Counts a check that a child process reported itself.
void countReported(bool ok);
int checksRun();
int checksFailed();

// Runs body() in a child process, which reports its outcome; a child killed by a signal (std::terminate
// aborts) is reported here as a failure.
template <typename Body>
void runIsolated(char const* group, std::string const& name, Body body)
{
    std::fflush(stdout);
    std::fflush(stderr);
    pid_t const child = fork();
    if (child == 0)
    {
        Outcome const outcome = body();
        report(group, name, outcome.ok, outcome.detail);
        std::fflush(stdout);
        _exit(outcome.ok ? 0 : 1);
    }
    int status{0};
    if (child < 0 || waitpid(child, &status, 0) != child)
    {
        report(group, name, false, "could not run the check in a child process");
    }
    else if (WIFEXITED(status))
    {
        countReported(WEXITSTATUS(status) == 0);
    }
    else
    {
        report(group, name, false,
            "child killed by signal " + std::to_string(WIFSIGNALED(status) ? WTERMSIG(status) : -1)
                + " (an exception escaped a noexcept method: std::terminate)");
    }
}

// Records what the plugin logs, without allocating (it is called right after an injected allocation failure).
class CapturingLogger : public nvinfer1::ILogger
{
public:
    void log(Severity severity, nvinfer1::AsciiChar const* message) noexcept override;
    int errors() const
    {
        return mErrors;
    }
    char const* lastMessage() const
    {
        return mLast;
    }

private:
    int mErrors{0};
    char mLast[512]{};
};

// The logger the driver's getLogger() returns.
CapturingLogger& globalLogger();

// Fails each allocation that invoke() makes, in turn. Each time, invoke() must report failure (return false),
// an error must be logged and nothing may leak. Ends at the first k that invoke() no longer reaches: that
// call must succeed, and it must have allocated at least once.
template <typename Invoke>
Outcome allocationFailuresHandled(Invoke invoke)
{
    CapturingLogger& logger = globalLogger();
    for (long k = 0; k < 64; ++k)
    {
        long const alive = allocation_faults::allocationsAlive();
        int const errors = logger.errors();
        allocation_faults::failAllocation(k);
        bool const succeeded = invoke();
        bool const injected = allocation_faults::stopFailing();
        std::string const at = "allocation " + std::to_string(k) + ": ";
        if (!injected)
        {
            if (!succeeded)
            {
                return {false, at + "the call failed with no injected failure"};
            }
            return {k > 0,
                std::to_string(k) + " allocation(s), each failed in turn: failure returned, error logged, nothing leaked"
                    + (k > 0 ? "; last: " + std::string(logger.lastMessage()) : "; but the call allocates nothing")};
        }
        if (succeeded)
        {
            return {false, at + "failed, yet the call reported success"};
        }
        if (logger.errors() == errors)
        {
            return {false, at + "failed silently (nothing logged)"};
        }
        if (allocation_faults::allocationsAlive() != alive)
        {
            return {false,
                at + "failed and " + std::to_string(allocation_faults::allocationsAlive() - alive)
                    + " allocation(s) leaked"};
        }
    }
    return {false, "more than 64 allocations"};
}

// invoke() must allocate nothing (its first allocation would throw) and return true (its result was right).
template <typename Invoke>
Outcome allocatesNothing(Invoke invoke)
{
    allocation_faults::failAllocation(0);
    bool const right = invoke();
    bool const allocated = allocation_faults::stopFailing();
    if (allocated)
    {
        return {false, "allocates (and survived the failure)"};
    }
    return {right, right ? "no allocation, result right" : "no allocation, but the result is wrong"};
}

// ---------------------------------------------------------------------------------------------
// An IExprBuilder of our own. IDimensionExpr and IExprBuilder are thin wrappers around the
// apiv::VDimensionExpr / apiv::VExprBuilder implementations libnvinfer normally supplies: constants
// fold, anything involving a symbolic dimension becomes a new symbolic dimension.
// ---------------------------------------------------------------------------------------------

#if NV_TENSORRT_MAJOR >= 10
using DimValue = int64_t;
#else
using DimValue = int32_t;
#endif

class FakeDimensionImpl : public nvinfer1::apiv::VDimensionExpr
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

class FakeDimension : public nvinfer1::IDimensionExpr
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

class FakeExprBuilderImpl : public nvinfer1::apiv::VExprBuilder
{
public:
    nvinfer1::IDimensionExpr const* constant(DimValue value) override;
    nvinfer1::IDimensionExpr const* operation(nvinfer1::DimensionOperation op, nvinfer1::IDimensionExpr const& first,
        nvinfer1::IDimensionExpr const& second) override;
#if NV_TENSORRT_MAJOR >= 10
    nvinfer1::IDimensionExpr const* declareSizeTensor(
        int32_t, nvinfer1::IDimensionExpr const&, nvinfer1::IDimensionExpr const&) override;
#endif
    // Dimensions handed to the plugin as inputs also live here.
    nvinfer1::IDimensionExpr const* make(bool constant, DimValue value);
    int calls() const
    {
        return mCalls;
    }

private:
    std::vector<std::unique_ptr<FakeDimension>> mPool;
    int mCalls{0};
};

class FakeExprBuilder : public nvinfer1::IExprBuilder
{
public:
    explicit FakeExprBuilder(FakeExprBuilderImpl& impl)
    {
        mImpl = &impl;
    }
    ~FakeExprBuilder() noexcept override = default;
};

} // namespace driver

#endif // DATTN_DRIVER_SUPPORT_H
