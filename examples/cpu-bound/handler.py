"""CPU-bound work: each invocation runs in its own worker process, so calls run in parallel."""

import time


def count_primes(limit):
    sieve = bytearray([1]) * (limit + 1)
    sieve[0:2] = b"\x00\x00"
    for i in range(2, int(limit**0.5) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytes(len(range(i * i, limit + 1, i)))
    return sum(sieve)


def handler(event, context):
    limit = int(event.get("limit", 1_000_000))
    start = time.process_time()
    primes = count_primes(limit)
    return {"limit": limit, "primes": primes, "cpu_s": round(time.process_time() - start, 4)}
