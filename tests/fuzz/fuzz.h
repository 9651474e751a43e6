/*
 * fuzz.h — shared by the libFuzzer targets in tests/fuzz: the entry points libFuzzer calls and
 * FUZZ_CHECK, which turns a broken invariant into an abort (libFuzzer keeps the input as a crash).
 */
#ifndef COSY_FUZZ_H
#define COSY_FUZZ_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                     \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);   \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

#endif
