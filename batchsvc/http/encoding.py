"""Request bodies sent with a `Content-Encoding`: which codings are accepted, and decoding one
without ever holding more than the body limit of decoded bytes.

The app turns aiohttp's own decompression off (`auto_decompress=False`, see `app.py`) and
decodes here instead, so that every outcome is the service's to answer: aiohttp's decoder
answers a corrupt gzip body with an exception the handler cannot tell from a crash (a 500),
and an encoding it has no library for (br, zstd) with a plain-text 400 that asks to
"install Brotli". Here: an unknown coding is 415 before the body is read, a corrupt one
400, and a decoded body over the limit 413, however small the compressed body was.
"""

from __future__ import annotations

import zlib

# RFC 9110 section 8.4.1: gzip (with its old alias x-gzip) and deflate; identity is none.
# Brotli and zstd would need libraries the service does not depend on.
DECODABLE = frozenset({"gzip", "x-gzip", "deflate"})
SUPPORTED = ("identity", "gzip", "deflate")


class UnsupportedEncoding(Exception):
    def __init__(self, coding: str) -> None:
        super().__init__(coding)
        self.coding = coding


class UndecodableBody(Exception):
    """The body is not valid data of the coding it claims (corrupt, truncated, or trailing
    garbage)."""


class DecodedTooLarge(Exception):
    """Decoding would produce more than the limit; decoding stopped just past it."""


def content_coding(header: str | None) -> str | None:
    """The one coding to undo, from a `Content-Encoding` header; None for none or identity.

    Raises UnsupportedEncoding for anything else, including a list of several codings (no
    client needs to compress twice, and each layer would be another bomb to bound)."""
    value = (header or "").strip().lower()
    if value in ("", "identity"):
        return None
    if value not in DECODABLE:
        raise UnsupportedEncoding(value[:64])
    return "gzip" if value == "x-gzip" else value


def decode(raw: bytes, coding: str, limit: int) -> bytes:
    """`raw` decoded from `coding` (gzip or deflate), at most `limit` bytes.

    zlib's `max_length` caps what one call may produce, so a bomb is inflated only to one
    byte past the limit, never into memory whole. gzip may hold several members one after
    another (RFC 1952), each decoded in turn. "deflate" should be zlib-wrapped (RFC 9110),
    but some clients send raw deflate; like aiohttp, tell them apart by the first byte (a
    zlib header's low nibble is 8, the deflate method)."""
    if coding == "gzip":
        wbits = 16 + zlib.MAX_WBITS
    else:
        wbits = zlib.MAX_WBITS if raw[:1] and raw[0] & 0x0F == 8 else -zlib.MAX_WBITS
    out = bytearray()
    decoder = zlib.decompressobj(wbits)
    pending = raw
    try:
        while True:
            out += decoder.decompress(pending, limit + 1 - len(out))
            if len(out) > limit:
                raise DecodedTooLarge
            pending = decoder.unconsumed_tail
            if decoder.eof:
                pending = decoder.unused_data
                if not pending:
                    return bytes(out)
                if coding != "gzip":
                    raise UndecodableBody("data after the end of the deflate stream")
                decoder = zlib.decompressobj(wbits)  # the next gzip member
            elif not pending:
                raise UndecodableBody(f"the {coding} data is truncated")
    except zlib.error as error:
        raise UndecodableBody(f"not valid {coding} data") from error
