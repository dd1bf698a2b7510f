"""iso8583sim 1.6.0's own TCP host and client as framing peers (ascii-binary wire format).

    sim_peer.py serve HEADER [TPDU]       MockHost on 127.0.0.1:0; prints the port; serves until
                                          stdin closes
    sim_peer.py send PORT HEADER [TPDU]   ISO8583Client sends one 0800 (and one 0200), prints
                                          `MTI DE39` of each response
"""
import asyncio
import sys

from iso8583sim.core.types import ISO8583Message
from iso8583sim.net import Framing, ISO8583Client, MockHost


def framing(header, tpdu):
    return Framing(header=header, tpdu=bytes.fromhex(tpdu) if tpdu else None)


async def serve(header, tpdu):
    host = MockHost(framing=framing(header, tpdu))
    await host.start("127.0.0.1", 0)
    print(host.port, flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    await host.stop()


async def send(port, header, tpdu):
    async with ISO8583Client("127.0.0.1", port, framing=framing(header, tpdu), timeout=5) as c:
        r = await c.send(ISO8583Message(mti="0800", fields={7: "1123101010", 11: "000007", 70: "301"}))
        print(r.mti, r.fields.get(39), flush=True)
        r = await c.send(ISO8583Message(mti="0200", fields={3: "000000", 4: "000000001000", 11: "000008", 41: "TERM0001"}))
        print(r.mti, r.fields.get(39), flush=True)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "serve":
        asyncio.run(serve(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None))
    else:
        asyncio.run(send(int(sys.argv[2]), sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None))
