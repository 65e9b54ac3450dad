#!/usr/bin/env python3
"""Regenerate the seed files of fuzz/seeds/ (run from anywhere: `python3 fuzz/seeds/make_seeds.py`).

Each seed is small and hand-made: valid frames (the examples of RFC 6455 section 5.7), valid
handshakes (RFC 6455 section 1.3, and what wskit-proto itself sends), and permessage-deflate
payloads (RFC 7692 section 7.2.3). The fuzzer mutates from there.
"""
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = bytes([0x37, 0xFA, 0x21, 0x3D])  # RFC 6455 section 5.7's masking key
HELLO_DEFLATE = bytes.fromhex("f248cdc9c90700")  # "Hello", RFC 7692 section 7.2.3.1


def frame(opcode, payload, fin=True, rsv=0, mask=None, len_bytes=None):
    """A frame; `len_bytes` forces a 2- or 8-byte length even when a shorter one would do."""
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    n = len(payload)
    m = 0x80 if mask else 0
    if len_bytes is None:
        len_bytes = 0 if n < 126 else 2 if n < 65536 else 8
    if len_bytes == 0:
        head += bytes([m | n])
    elif len_bytes == 2:
        head += bytes([m | 126]) + struct.pack(">H", n)
    else:
        head += bytes([m | 127]) + struct.pack(">Q", n)
    if mask:
        head += mask
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + payload


def deflate(data, final=False):
    """Raw deflate as permessage-deflate sends it: a sync flush, without the 00 00 ff ff tail."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_FINISH if final else zlib.Z_SYNC_FLUSH)
    return out if final else out[:-4]


TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA
CLOSE_1000 = struct.pack(">H", 1000) + b"bye"


def write(target, name, data):
    os.makedirs(os.path.join(HERE, target), exist_ok=True)
    with open(os.path.join(HERE, target, name), "wb") as f:
        f.write(data)


# ===== frame: raw frames =====
rfc = {
    "rfc-text-unmasked": bytes.fromhex("810548656c6c6f"),
    "rfc-text-masked": bytes.fromhex("818537fa213d7f9f4d5158"),
    "rfc-fragmented": bytes.fromhex("010348656c") + bytes.fromhex("80026c6f"),
    "rfc-ping": bytes.fromhex("890548656c6c6f"),
    "rfc-pong-masked": bytes.fromhex("8a8537fa213d7f9f4d5158"),
    "rfc-binary-256": frame(BINARY, bytes([0xAB]) * 256),
}
assert rfc["rfc-text-masked"] == frame(TEXT, b"Hello", mask=KEY)
for name, data in rfc.items():
    write("frame", name, data)
write("frame", "binary-64bit-length", frame(BINARY, b"Hello", len_bytes=8))
write("frame", "close-1000-masked", frame(CLOSE, CLOSE_1000, mask=KEY))
write("frame", "compressed-hello", frame(TEXT, HELLO_DEFLATE, rsv=0b100))
write("frame", "sequence", b"".join(rfc.values()) + frame(CLOSE, b""))

# ===== request / response: handshakes =====
RFC_REQUEST = (
    b"GET /chat HTTP/1.1\r\n"
    b"Host: server.example.com\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Origin: http://example.com\r\n"
    b"Sec-WebSocket-Protocol: chat, superchat\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"\r\n"
)
# What wskit-proto's client sends (Protocol::connect_request), with the RFC's key.
DEFLATE_OFFER = b"permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
WSKIT_REQUEST = (
    b"GET / HTTP/1.1\r\n"
    b"Host: localhost\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Extensions: " + DEFLATE_OFFER + b"\r\n"
    b"User-Agent: wskit/0.1.0\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"\r\n"
)
write("request", "rfc-6455-1.3", RFC_REQUEST)
write("request", "wskit-deflate-offer", WSKIT_REQUEST)
write("request", "lf-only", RFC_REQUEST.replace(b"\r\n", b"\n"))
write(
    "request",
    "several-offers",
    b"GET /a?b=c HTTP/1.1\r\nHost: h:8080\r\nupgrade: WebSocket\r\n"
    b"connection: keep-alive, Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover, "
    b'permessage-deflate; server_max_window_bits="10"\r\n'
    b"sec-websocket-version: 13\r\n\r\n",
)

RFC_RESPONSE = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    b"Sec-WebSocket-Protocol: chat\r\n"
    b"\r\n"
)
WSKIT_RESPONSE = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    b"Sec-WebSocket-Extensions: " + DEFLATE_OFFER + b"\r\n"
    b"\r\n"
)
body = b"Failed to open a WebSocket connection: missing Sec-WebSocket-Version header.\n"
REJECT_426 = (
    b"HTTP/1.1 426 Upgrade Required\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: " + str(len(body)).encode() + b"\r\n"
    b"Connection: close\r\n"
    b"Upgrade: websocket\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"\r\n" + body
)
write("response", "rfc-6455-1.3-101", RFC_RESPONSE)
write("response", "wskit-101-deflate", WSKIT_RESPONSE)
write("response", "101-with-frame-behind", RFC_RESPONSE + rfc["rfc-text-unmasked"])
write("response", "426-with-body", REJECT_426)
write("response", "204-no-body", b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")

# ===== inflate: deflate payloads; len % 4 picks the frame (see fuzz_targets/inflate.rs) =====
write("inflate", "hello-sync-flush", HELLO_DEFLATE)  # 7 bytes: text, more to come
write("inflate", "hello-final-block", deflate(b"Hello", final=True))
write("inflate", "empty-message", b"\x00")  # 7.2.3.6: 1 byte, final text
write("inflate", "stored-hello", bytes.fromhex("000500faff") + b"Hello")  # 7.2.3.3
# RFC 7692 7.2.3.2's two messages as one: "Hello", a sync flush, "Hello" again by reference
# to the first (16 bytes: final binary).
write("inflate", "hello-hello", HELLO_DEFLATE + bytes.fromhex("0000ffff") + bytes.fromhex("f200110000"))
for n in range(4):
    text = b"The quick brown fox jumps over the lazy dog. " * (n + 1)
    write("inflate", f"text-{n}", deflate(text))
# A decompression bomb: 1 MiB of zeros in about a kilobyte, far past the 64 KiB limit.
write("inflate", "bomb", deflate(bytes(1 << 20)))

# ===== protocol: one setup byte, then frames from the peer =====
# Frames a client sends (masked): what the server side accepts.
client_frames = (
    frame(TEXT, b"Hello", mask=KEY)
    + frame(PING, b"ping", mask=KEY)
    + frame(TEXT, HELLO_DEFLATE, rsv=0b100, mask=KEY)
    + frame(BINARY, b"frag", fin=False, mask=KEY)
    + frame(PONG, b"", mask=KEY)
    + frame(CONT, b"mented", mask=KEY)
    + frame(CLOSE, CLOSE_1000, mask=KEY)
)
# Frames a server sends (unmasked): what the client side accepts.
server_frames = (
    rfc["rfc-text-unmasked"]
    + rfc["rfc-ping"]
    + frame(TEXT, HELLO_DEFLATE, rsv=0b100)
    + frame(BINARY, deflate(b"abc" * 50)[:10], fin=False, rsv=0b100)
    + frame(CONT, deflate(b"abc" * 50)[10:])
    + frame(CLOSE, CLOSE_1000)
)
write("protocol", "server-all-at-once", b"\x00" + client_frames)
write("protocol", "server-byte-by-byte", b"\x01" + client_frames)
write("protocol", "server-streaming-chunks-of-9", b"\x43" + client_frames)
write("protocol", "server-early", b"\x80" + client_frames)
write("protocol", "client-all-at-once", b"\x00" + server_frames)
write("protocol", "client-streaming-chunks-of-4", b"\x42" + server_frames)
write("protocol", "client-early", b"\x84" + server_frames)
