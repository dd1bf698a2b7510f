"""Times pyiso8583 4.0.1 encode + decode of the bench's 16-field 0200 (specs.default).
Prints one number: nanoseconds per encode + decode (best of 5 runs)."""
import timeit

import iso8583
from iso8583.specs import default as spec

MSG = {
    "t": "0200", "2": "4761739001010119", "3": "000000", "4": "000000010000",
    "7": "1123101010", "11": "000123", "12": "101010", "13": "1123", "14": "2812",
    "18": "5999", "22": "012", "25": "00", "37": "000000123456", "41": "TERM0001",
    "42": "MERCHANT0000001", "43": "SWITCHYARD TEST MERCHANT   AMSTERDAM  NL", "49": "978",
}


def once():
    raw, _ = iso8583.encode(dict(MSG), spec)
    iso8583.decode(raw, spec)


n = 2000
best = min(timeit.repeat(once, number=n, repeat=5))
print(round(best / n * 1e9))
