"""Sealed streams: bytes of any length under a key, in chunks, such that a change, a reorder or a cut shows.

libsodium's secretstream (XChaCha20-Poly1305, through PyNaCl's bindings):
each chunk is authenticated and chained to the ones before it, and the last
carries a tag of its own, so a stream that lost its end at a chunk boundary
is told from a whole one. ``context`` is authenticated with every chunk (what
a file says in the clear about itself). No I/O: chunks in, chunks out.
"""

from __future__ import annotations

from typing import Final

import nacl.bindings as sodium
import nacl.exceptions

from keys.errors import KeysError

CHUNK: Final = 64 * 1024  # plaintext bytes in every chunk but the last
SEALED_CHUNK: Final = CHUNK + sodium.crypto_secretstream_xchacha20poly1305_ABYTES
HEADER_SIZE: Final = sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES
KEY_SIZE: Final = sodium.crypto_secretstream_xchacha20poly1305_KEYBYTES
_LAST: Final = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL
_MORE: Final = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE


class StreamBroken(KeysError):
    """A sealed stream that does not open: changed, cut, sealed under another key, or with bytes after its end."""

    code = "malformed"


class StreamSealer:
    """Seals one stream: ``header`` first, then each chunk as ``seal`` returns it."""

    def __init__(self, key: bytes, context: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise KeysError(f"a stream key is {KEY_SIZE} bytes")
        self._state = sodium.crypto_secretstream_xchacha20poly1305_state()
        self.header: bytes = sodium.crypto_secretstream_xchacha20poly1305_init_push(self._state, key)
        self._context = context
        self._ended = False

    def seal(self, chunk: bytes, *, last: bool) -> bytes:
        """``chunk`` (at most CHUNK bytes; every one but the last exactly CHUNK) sealed; ``last`` ends the stream."""
        if self._ended or len(chunk) > CHUNK:
            raise KeysError("a sealed stream takes chunks of at most CHUNK bytes, and none after its last")
        self._ended = last
        return sodium.crypto_secretstream_xchacha20poly1305_push(self._state, chunk, self._context, _LAST if last else _MORE)


class StreamOpener:
    """Opens one stream sealed by ``StreamSealer`` under the same key and context, chunk by chunk in order."""

    def __init__(self, key: bytes, header: bytes, context: bytes) -> None:
        if len(key) != KEY_SIZE or len(header) != HEADER_SIZE:
            raise StreamBroken("the stream's header is cut short")
        self._state = sodium.crypto_secretstream_xchacha20poly1305_state()
        sodium.crypto_secretstream_xchacha20poly1305_init_pull(self._state, header, key)
        self._context = context
        self.ended = False

    def open(self, sealed: bytes) -> bytes:
        """The chunk ``sealed`` held; ``ended`` tells whether it was the last."""
        if self.ended:
            raise StreamBroken("there are bytes after the stream's end")
        try:
            chunk, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(self._state, sealed, self._context)
        except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
            raise StreamBroken("a part does not open: it was changed, cut, or sealed under another key") from exc
        self.ended = tag == _LAST
        return bytes(chunk)


__all__ = ["StreamSealer", "StreamOpener", "StreamBroken", "CHUNK", "SEALED_CHUNK", "HEADER_SIZE", "KEY_SIZE"]
