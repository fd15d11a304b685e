/* SPDX-License-Identifier: MIT */
#pragma once
/* What every fuzz target shares: its entry point, and invariants that abort loudly. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                         \
        do {                                                                                \
                if (!(cond)) {                                                              \
                        fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, \
                                #cond);                                                     \
                        abort();                                                            \
                }                                                                           \
        } while (0)
