"""Signed overpunch from an independent implementation: the `overpunch` package 1.1 from PyPI
(Truveris), which reads and writes the ASCII overpunch characters (`{` `A`-`I` for +0..+9,
`}` `J`-`R` for -0..-9). EBCDIC is Python's own `cp037` codec: in code page 037 those
characters are exactly the zoned bytes C0-C9 and D0-D9, so `.encode("cp037")` of the ASCII
form is the EBCDIC zoned decimal, and `.decode("cp037")` of EBCDIC zoned bytes the ASCII form.

    overpunch_peer.py DIGITS DECIMALS     e.g. 12 2 for S9(10)V99

stdin, one request a line:
    parse HEX        HEX: EBCDIC zoned bytes; answers `VALUE ASCII` (the value as a plain
                     decimal string, and the ASCII overpunch text the bytes decode to)
    format VALUE     VALUE: a decimal string; answers `HEX ASCII` (the EBCDIC bytes of the
                     value zero-filled to DIGITS, and their ASCII overpunch text)
"""
import sys
from decimal import Decimal

try:
    import overpunch
except ImportError:
    sys.exit("overpunch_peer.py needs the PyPI package overpunch==1.1: run scripts/test "
             "(it installs it into .venv), or point SWITCHYARD_PYTHON at a Python that has it")


def main():
    digits, decimals = int(sys.argv[1]), int(sys.argv[2])
    for line in sys.stdin:
        op, arg = line.split()
        if op == "parse":
            text = bytes.fromhex(arg).decode("cp037")
            value = overpunch.extract(text, decimals=decimals)
            print(f"{value:f} {text}")
        elif op == "format":
            text = overpunch.format(Decimal(arg), decimals=decimals)
            if len(text) > digits:
                sys.exit(f"{arg} needs more than {digits} digits")
            text = text.rjust(digits, "0")
            print(f"{text.encode('cp037').hex()} {text}")
        else:
            sys.exit(f"unknown request {op!r}")


if __name__ == "__main__":
    main()
