// SPDX-FileCopyrightText: Copyright (c) dattn contributors
// SPDX-License-Identifier: AGPL-3.0-or-later
//
// Fault injection for the host driver: this program's operator new can be told to throw std::bad_alloc
// at the k-th allocation, and counts what is allocated and still alive. Compiled into the driver only.
#ifndef DATTN_ALLOCATION_FAULTS_H
#define DATTN_ALLOCATION_FAULTS_H

namespace allocation_faults
{

// From now on, allocation number `k` (0 = the next one) throws std::bad_alloc, once.
void failAllocation(long k);
// Stops failing; true when the failure was injected since failAllocation.
bool stopFailing();
// Allocations made so far, and those not yet freed.
long allocationsMade();
long allocationsAlive();

} // namespace allocation_faults

#endif // DATTN_ALLOCATION_FAULTS_H
