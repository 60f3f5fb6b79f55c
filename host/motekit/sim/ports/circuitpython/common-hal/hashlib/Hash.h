// The port side of CircuitPython's hashlib.Hash for motekit's unix variant: SHA-256 from the tree's
// lib/crypto-algorithms (what MicroPython's hashlib uses without mbedtls).
#pragma once

#include "py/obj.h"
#include "lib/crypto-algorithms/sha256.h"

typedef struct {
    mp_obj_base_t base;
    CRYAL_SHA256_CTX sha256;
} hashlib_hash_obj_t;
