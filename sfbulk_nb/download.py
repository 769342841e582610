"""Reading a CSV answer's body (query result pages, ingest result files) into one buffer.

Salesforce gzips these bodies when asked (requests asks), and for a query of a million rows
unpacking them is about 40% of the client's CPU. urllib3 would unpack them with the
standard library's zlib; here the raw bytes are read and unpacked with ISA-L (the `isal`
package: the same deflate, about twice as fast) where it is installed, zlib otherwise.
Either way the answer goes into one growing buffer, never held twice.
"""
from __future__ import annotations

import zlib

import requests
import urllib3

try:  # ISA-L: built for x86-64 and ARM64; elsewhere the standard library's zlib does it
    from isal import isal_zlib as _inflate
except ImportError:  # pragma: no cover - depends on the platform
    _inflate = zlib  # type: ignore[assignment]

# Bytes read from the socket at a time: some 200 KB once unpacked, under malloc's mmap
# threshold (memory.MMAP_THRESHOLD), so each piece reuses heap memory the last one freed
# instead of mapping fresh pages (1 << 18 cost 10% more CPU in a 1M-row query_df).
_PIECE = 1 << 15
# wbits: 16 + MAX_WBITS reads the gzip framing, MAX_WBITS the zlib framing of "deflate".
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS,
          "deflate": zlib.MAX_WBITS}


class CutOff(Exception):
    """The body ended early or could not be unpacked: read it again."""


def body(response: requests.Response) -> bytearray:
    """The whole body of a streamed (``stream=True``) response, unpacked. Raises CutOff when
    the connection broke, the body was shorter than announced, or its compressed stream
    stopped before its end (a cut answer must never pass for a short one)."""
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    raw = response.raw
    out = bytearray()
    try:
        if encoding not in _WBITS:
            # Not packed ("" or identity), or packed in a way we don't read ourselves (br,
            # zstd): urllib3 unpacks what it knows.
            for piece in response.iter_content(_PIECE):
                out += piece
            return out
        unpacker = _inflate.decompressobj(_WBITS[encoding])
        while True:
            piece = raw.read(_PIECE, decode_content=False)
            if not piece:
                break
            out += unpacker.decompress(piece)
        out += unpacker.flush()
        if not unpacker.eof:
            raise CutOff(f"the {encoding} stream stops before its end")
        return out
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as e:
        raise CutOff(type(e).__name__) from None
    except (zlib.error, getattr(_inflate, "error", zlib.error)) as e:
        raise CutOff(f"the {encoding} stream is damaged ({e})") from None
    finally:
        response.close()
