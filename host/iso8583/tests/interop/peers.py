"""Independent ISO 8583 implementations as test peers of switchyard-iso8583.

    peers.py pyiso SPEC [OPTION...]      pyiso8583 4.0.1 with a spec dict written here, by hand,
                                         from the standards and jPOS's packagers
    peers.py sim PRESET [right]          iso8583sim 1.6.0 wire presets (ascii-binary, ascii-hex,
                                         bcd, ebcdic); `right`: bcd_odd_padding="right"
    peers.py py8583                      py8583 1.3, IsoSpec1987BCD

stdin: one message per line, `OURS FIELDS`: OURS the hex of the frame switchyard encoded,
FIELDS `n=HEX;n=HEX;...` with `t=MTI` first; each HEX is the hex of the field's *logical* value
(the characters of n/an/ans/z fields, the bytes of b fields).
stdout: one line per message, `THEIRS FIELDS`: the hex of the frame the peer encodes from the
same fields, and the fields the peer decodes from OURS, in the same form.
No value is ever printed to stderr (test data may include the published test PANs only).
"""
import copy
import sys

SPEC_OPTIONS = ("pad=left-0", "pad=right-f", "de49=bcd")

# ISO 8583:1987 (pyiso8583's specs.default has the lengths; these are the content kinds).
NUM87_FIXED = set(range(3, 28)) | {53} | set(range(66, 91))
NUM87_VAR = {2, 32, 33, 99, 100}
BIN87 = {52, 55, 64, 96, 128}
TRACK = {35, 36}

# ISO 8583:1993: field -> (length digits, max length, kind) with kind n, z, b or t (text).
ISO93 = {
    2: (2, 19, "n"), 3: (0, 6, "n"), 4: (0, 12, "n"), 5: (0, 12, "n"), 6: (0, 12, "n"),
    7: (0, 10, "n"), 8: (0, 8, "n"), 9: (0, 8, "n"), 10: (0, 8, "n"), 11: (0, 6, "n"),
    12: (0, 12, "n"), 13: (0, 4, "n"), 14: (0, 4, "n"), 15: (0, 6, "n"), 16: (0, 4, "n"),
    17: (0, 4, "n"), 18: (0, 4, "n"), 19: (0, 3, "n"), 20: (0, 3, "n"), 21: (0, 3, "n"),
    22: (0, 12, "t"), 23: (0, 3, "n"), 24: (0, 3, "n"), 25: (0, 4, "n"), 26: (0, 4, "n"),
    27: (0, 1, "n"), 28: (0, 6, "n"), 29: (0, 3, "n"), 30: (0, 24, "n"), 31: (2, 99, "t"),
    32: (2, 11, "n"), 33: (2, 11, "n"), 34: (2, 28, "t"), 35: (2, 37, "z"), 36: (3, 104, "z"),
    37: (0, 12, "t"), 38: (0, 6, "t"), 39: (0, 3, "n"), 40: (0, 3, "n"), 41: (0, 8, "t"),
    42: (0, 15, "t"), 43: (2, 99, "t"), 44: (2, 99, "t"), 45: (2, 76, "t"), 46: (3, 204, "t"),
    47: (3, 999, "t"), 48: (3, 999, "t"), 49: (0, 3, "t"), 50: (0, 3, "t"), 51: (0, 3, "t"),
    52: (0, 8, "b"), 53: (2, 48, "b"), 54: (3, 120, "t"), 55: (3, 255, "b"), 56: (2, 35, "n"),
    57: (0, 3, "n"), 58: (2, 11, "n"), 59: (3, 999, "t"), 60: (3, 999, "t"), 61: (3, 999, "t"),
    62: (3, 999, "t"), 63: (3, 999, "t"), 64: (0, 8, "b"), 66: (3, 204, "t"), 67: (0, 2, "n"),
    68: (0, 3, "n"), 69: (0, 3, "n"), 70: (0, 3, "n"), 71: (0, 8, "n"), 72: (3, 999, "t"),
    73: (0, 6, "n"), 74: (0, 10, "n"), 75: (0, 10, "n"), 76: (0, 10, "n"), 77: (0, 10, "n"),
    78: (0, 10, "n"), 79: (0, 10, "n"), 80: (0, 10, "n"), 81: (0, 10, "n"), 82: (0, 10, "n"),
    83: (0, 10, "n"), 84: (0, 10, "n"), 85: (0, 10, "n"), 86: (0, 16, "n"), 87: (0, 16, "n"),
    88: (0, 16, "n"), 89: (0, 16, "n"), 90: (0, 10, "n"), 91: (0, 3, "n"), 92: (0, 3, "n"),
    93: (2, 11, "n"), 94: (2, 11, "n"), 95: (2, 99, "t"), 96: (3, 999, "b"), 97: (0, 17, "t"),
    98: (0, 25, "t"), 99: (2, 11, "t"), 100: (2, 11, "n"), 101: (2, 17, "t"), 102: (2, 28, "t"),
    103: (2, 28, "t"), 104: (3, 100, "t"), 105: (0, 16, "n"), 106: (0, 16, "n"),
    107: (0, 10, "n"), 108: (0, 10, "n"), 109: (2, 84, "t"), 110: (2, 84, "t"),
    **{n: (3, 999, "t") for n in range(111, 128)},
    128: (0, 8, "b"),
}


def field(enc, len_enc, len_type, max_len, **extra):
    return dict(data_enc=enc, len_enc=len_enc, len_type=len_type, max_len=max_len, desc="", **extra)


def kinds87():
    out = {}
    for n in range(2, 129):
        if n == 65:
            continue
        if n in NUM87_FIXED or n in NUM87_VAR:
            out[n] = "n"
        elif n in TRACK:
            out[n] = "z"
        elif n in BIN87:
            out[n] = "b"
        else:
            out[n] = "t"
    return out


def base(version):
    """A pyiso8583 spec (ASCII, binary bitmap) and the content kind of each field."""
    import iso8583.specs

    spec = copy.deepcopy(iso8583.specs.default)
    if version == "87":
        return spec, kinds87()
    kinds = {}
    for n, (digits, max_len, kind) in ISO93.items():
        enc = "b" if kind == "b" else "ascii"
        spec[str(n)] = field(enc, "ascii", digits, max_len)
        kinds[n] = kind
    return spec, kinds


def dialect_hex(spec, kinds):
    for key in ("p", "1"):
        spec[key] = field("ascii", "ascii", 0, 16)
    for n, kind in kinds.items():
        f = spec[str(n)]
        if kind == "b":
            f["data_enc"] = "ascii"
            f["max_len"] = f["max_len"] * 2 if f["len_type"] == 0 else min(f["max_len"] * 2, 999)
    return {n for n, k in kinds.items() if k == "b"}


def dialect_binary(spec, kinds, var_pad=("right_pad", "0")):
    """jPOS ISO87B: BCD MTI, BCD numbers (fixed: left pad 0; variable and DE35: right pad 0),
    BCD length prefixes, text as ASCII."""
    spec["t"] = field("b", "ascii", 0, 2)
    bcd = set()
    for n, kind in kinds.items():
        f = spec[str(n)]
        variable = f["len_type"] > 0
        if variable:
            f["len_enc"] = "bcd"
            f["len_type"] = {1: 1, 2: 1, 3: 2, 4: 2}[f["len_type"]]
        if kind == "n" or (kind == "z" and n == 35):
            f["data_enc"] = "b"
            f["len_count"] = "nibbles"
            if variable:
                f[var_pad[0]] = var_pad[1]
            else:
                f["left_pad"] = "0"
            bcd.add(n)
    return bcd


def dialect_ebcdic(spec, kinds, codec):
    spec["t"]["data_enc"] = codec
    for n, kind in kinds.items():
        f = spec[str(n)]
        if kind != "b":
            f["data_enc"] = codec
        if f["len_type"] > 0:
            f["len_enc"] = codec


def pyiso_spec(name, options):
    version = "93" if name.startswith("iso93") else "87"
    spec, kinds = base(version)
    bcd, hex_text = set(), set()
    if name == "iso87-ascii-hex":
        hex_text = dialect_hex(spec, kinds)
    elif name.endswith("-binary"):
        pad = ("right_pad", "0")
        if "pad=left-0" in options:
            pad = ("left_pad", "0")
        if "pad=right-f" in options:
            pad = ("right_pad", "F")
        bcd = dialect_binary(spec, kinds, pad)
        if "de49=bcd" in options:
            spec["49"].update(data_enc="b", len_count="nibbles", left_pad="0")
            bcd.add(49)
    elif name == "iso87-ebcdic":
        dialect_ebcdic(spec, kinds, "cp037")
    elif name == "iso87-ebcdic-1047":
        import ebcdic  # noqa: F401  (registers the cp1047 codec)

        dialect_ebcdic(spec, kinds, "cp1047")
    elif name not in ("iso87-ascii", "iso93-ascii"):
        raise SystemExit(f"no pyiso8583 spec for {name}")
    return spec, kinds, bcd, hex_text


def parse_line(line):
    ours, _, fields = line.strip().partition(" ")
    values = {}
    for item in fields.split(";"):
        key, _, value = item.partition("=")
        values[key] = bytes.fromhex(value)
    return bytes.fromhex(ours), values


def emit(theirs, fields):
    body = ";".join(f"{k}={v.hex()}" for k, v in fields)
    print(f"{theirs.hex()} {body}", flush=True)


def run_pyiso(name, options):
    import iso8583

    spec, kinds, bcd, hex_text = pyiso_spec(name, options)

    def to_theirs(n, logical):
        if kinds[n] == "b" and n not in hex_text:
            return logical.hex().upper()
        if n in hex_text:
            return logical.hex().upper()
        return logical.decode("ascii")

    def to_logical(n, value):
        if kinds[n] == "b" or n in hex_text:
            return bytes.fromhex(value)
        return value.upper().encode("ascii") if n in bcd else value.encode("ascii")

    for line in sys.stdin:
        if not line.strip():
            continue
        ours, values = parse_line(line)
        doc = {"t": values.pop("t").decode()}
        for k, v in values.items():
            doc[k] = to_theirs(int(k), v)
        raw, _ = iso8583.encode(doc, spec)
        decoded, _ = iso8583.decode(bytes(ours), spec)
        out = [("t", decoded["t"].encode())]
        for k in sorted((k for k in decoded if k.isdigit() and k not in ("1",)), key=int):
            out.append((k, to_logical(int(k), decoded[k])))
        emit(bytes(raw), out)


SIM_BINARY = {52, 55, 64, 96, 128}


def run_sim(preset, options):
    from iso8583sim.core.types import ISO8583Message
    from iso8583sim.wire import WireFormat, decode_message, encode_message

    fmt = WireFormat.preset(preset)
    if "right" in options:
        fmt = WireFormat(**{**fmt.__dict__, "bcd_odd_padding": "right"})
    bcd_track = fmt.numeric.value == "bcd"
    for line in sys.stdin:
        if not line.strip():
            continue
        ours, values = parse_line(line)
        mti = values.pop("t").decode()
        fields = {}
        for k, v in values.items():
            n = int(k)
            if n in SIM_BINARY:
                fields[n] = v.hex().upper()
            else:
                text = v.decode("ascii")
                fields[n] = text.replace("D", "=") if n in TRACK and bcd_track else text
        theirs = encode_message(ISO8583Message(mti=mti, fields=fields), fmt)
        decoded = decode_message(ours, fmt)
        out = [("t", decoded.mti.encode())]
        for n in sorted(k for k in decoded.fields if k != 0):
            v = decoded.fields[n]
            if n in SIM_BINARY:
                out.append((str(n), bytes.fromhex(v)))
            else:
                v = v.replace("=", "D") if n in TRACK and bcd_track else v
                out.append((str(n), v.encode("ascii")))
        emit(theirs, out)


def run_py8583():
    from py8583.py8583 import Iso8583
    from py8583.py8583spec import IsoSpec1987BCD

    for line in sys.stdin:
        if not line.strip():
            continue
        ours, values = parse_line(line)
        spec = IsoSpec1987BCD()
        msg = Iso8583(IsoSpec=spec)
        msg.MTI(values.pop("t").decode())
        for k, v in values.items():
            n = int(k)
            msg.Field(n, 1)
            ctype = spec.ContentType(n)
            if ctype == "b":
                # FieldData() checks the hex text against the byte length; set it directly.
                msg._Iso8583__FieldData[n] = v.hex().upper()
            elif ctype == "n":
                msg.FieldData(n, int(v.decode()))
            else:
                msg.FieldData(n, v.decode("ascii"))
        theirs = msg.BuildIso()
        back = Iso8583(ours, IsoSpec1987BCD())
        out = [("t", back.MTI().encode())]
        for n in sorted(k for k, present in back.Bitmap().items() if present and k != 1):
            v = back.FieldData(n)
            ctype = spec.ContentType(n)
            if ctype == "b":
                out.append((str(n), bytes.fromhex(v)))
            elif ctype == "n":
                width = spec.MaxLength(n) if spec.LengthType(n).value == 0 else 0
                out.append((str(n), str(v).zfill(width).encode()))
            elif ctype == "z":
                out.append((str(n), str(v).replace("=", "D").encode("ascii")))
            else:
                out.append((str(n), str(v).encode("ascii")))
        emit(bytes(theirs), out)


def main():
    cmd = sys.argv[1]
    if cmd == "pyiso":
        run_pyiso(sys.argv[2], sys.argv[3:])
    elif cmd == "sim":
        run_sim(sys.argv[2], sys.argv[3:])
    elif cmd == "py8583":
        run_py8583()
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
