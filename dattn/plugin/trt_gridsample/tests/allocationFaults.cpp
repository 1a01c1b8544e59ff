// SPDX-FileCopyrightText: Copyright (c) dattn contributors
// SPDX-License-Identifier: AGPL-3.0-or-later
//
// Replaces the global operator new / delete of the driver (and so of the plugin code linked into it).
#include "allocationFaults.h"

#include <cstdlib>
#include <new>

namespace allocation_faults
{
namespace
{
long gCountdown = -1; // allocations left before the failing one; -1: none fails
bool gInjected = false;
long gMade = 0;
long gAlive = 0;
} // namespace

void failAllocation(long k)
{
    gCountdown = k;
    gInjected = false;
}

bool stopFailing()
{
    gCountdown = -1;
    return gInjected;
}

long allocationsMade()
{
    return gMade;
}

long allocationsAlive()
{
    return gAlive;
}

} // namespace allocation_faults

using namespace allocation_faults;

void* operator new(std::size_t size)
{
    if (gCountdown == 0)
    {
        gCountdown = -1;
        gInjected = true;
        throw std::bad_alloc();
    }
    if (gCountdown > 0)
    {
        --gCountdown;
    }
    void* memory = std::malloc(size == 0 ? 1 : size);
    if (memory == nullptr)
    {
        throw std::bad_alloc();
    }
    ++gMade;
    ++gAlive;
    return memory;
}

void* operator new[](std::size_t size)
{
    return ::operator new(size);
}

// The nothrow forms go through the throwing one, so an injected failure reaches them as nullptr.
void* operator new(std::size_t size, std::nothrow_t const&) noexcept
{
    try
    {
        return ::operator new(size);
    }
    catch (...)
    {
        return nullptr;
    }
}

void* operator new[](std::size_t size, std::nothrow_t const&) noexcept
{
    return ::operator new(size, std::nothrow);
}

void operator delete(void* memory) noexcept
{
    if (memory != nullptr)
    {
        --gAlive;
        std::free(memory);
    }
}

void operator delete[](void* memory) noexcept
{
    ::operator delete(memory);
}

void operator delete(void* memory, std::size_t) noexcept
{
    ::operator delete(memory);
}

void operator delete[](void* memory, std::size_t) noexcept
{
    ::operator delete(memory);
}
