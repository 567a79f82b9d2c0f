"""Keep personal data and unbounded sizes out of dead letters.

A dead letter carries the message it could not process, so that it can be
found, fixed and replayed. Two things must never travel with it:

- **Personal data in clear.** :class:`Redactor` replaces it. In a message that
  parses as JSON, every value under a personal field name (``email``,
  ``phone``, or the leaf of any configured path), at any depth, becomes its
  salted hash, and e-mail addresses in any other string are masked. Text that
  is not JSON (broken JSON, invalid UTF-8, the cut prefix of an oversized
  message) is scrubbed with patterns: the values of personal field names,
  e-mail addresses and phone numbers. Every pattern runs in linear time:
  matches may only start where a token starts (a look-behind) and use
  possessive or bounded repetition, so nothing backtracks over unbounded
  input (the old pattern took 36 s on 150 KB of invalid UTF-8).
- **Unbounded size.** :func:`fit` cuts the raw text so that the encoded
  record stays within a byte budget below the Kafka producer's
  ``max_request_size`` (a 2 MB message used to make a 1 MiB dead letter that
  the producer refused, on every restart). A cut record keeps the prefix,
  the original length (``truncated_from``) and the original's SHA-256
  (``raw_sha256``), so the message can still be found at its ``source``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

__all__ = ["Redactor", "scrub_text", "fit", "digest", "cut_at_boundary"]

# Characters that end a token: a match of an e-mail address can only start
# right after one of these (or at the start), which is what keeps the scan linear.
_SEP = rb"\s\"'<>()\[\]{},;:\\"
_EMAIL = re.compile(rb"(?<![^" + _SEP + rb"])[^" + _SEP + rb"@]++(?:@[^" + _SEP + rb"@]++)++")
_TLD = re.compile(rb"\.[A-Za-z]{2}")
# A phone number: 7 to 15 digits, single separators between them. Bounded
# repetition, and a start that cannot follow a digit: linear. Without a
# leading "+" at least 10 digits are needed, so that dates (8 digits) stay.
_PHONE = re.compile(rb"(?<![\w+(])(?:\+\(?\d(?:[ ./()\-]{0,2}\d){6,14}|\(?\d(?:[ ./()\-]{0,2}\d){9,14})(?![\w])")
_EMAIL_MASK = b"[redacted-email]"
_PHONE_MASK = b"[redacted-phone]"
_VALUE_MASK = b'"[redacted]"'
# How far back from a cut to look for a token boundary (a cut must not leave
# half an e-mail address behind: the mask needs the whole address to match).
_BOUNDARY_WINDOW = 256
_SEPARATORS = frozenset(b" \t\r\n\"'<>()[]{},;:\\")


def digest(raw: bytes) -> str:
    """Return the SHA-256 of ``raw`` in hex (to find a cut message at its source).

    >>> digest(b"abc")[:16]
    'ba7816bf8f01cfea'
    """
    return hashlib.sha256(raw).hexdigest()


def _mask_email(match: re.Match[bytes]) -> bytes:
    token = match.group(0)
    # "a@b@c.com" is one token: mask it if any part after an "@" has a domain.
    for part in token.split(b"@")[1:]:
        if _TLD.search(part):
            return _EMAIL_MASK
    return token


def scrub_text(text: bytes, names: re.Pattern[bytes] | None = None) -> bytes:
    """Return ``text`` with personal field values, e-mails and phone numbers masked.

    ``names`` matches ``"field": value`` for the personal field names (see
    :meth:`Redactor.names_pattern`); the value may be unterminated (cut text).

    >>> scrub_text(b'{"to": "Jane <jane.doe@example.com>", "tel": "+49 151 2345 6789"')
    b'{"to": "Jane <[redacted-email]>", "tel": "[redacted-phone]"'
    >>> scrub_text(b"x" * 5 + b"@nowhere, 2026-11-22")
    b'xxxxx@nowhere, 2026-11-22'
    """
    if names is not None:
        text = names.sub(lambda m: m.group(1) + _VALUE_MASK, text)
    text = _EMAIL.sub(_mask_email, text)
    return _PHONE.sub(_PHONE_MASK, text)


def cut_at_boundary(text: bytes, size: int) -> bytes:
    """Return a prefix of ``text`` of at most ``size`` bytes, ending on a token
    boundary when one is near, and never inside a UTF-8 character.

    >>> cut_at_boundary(b"mail jane.doe@example.com now", 18)
    b'mail '
    >>> cut_at_boundary("héllo".encode(), 2)
    b'h'
    """
    if len(text) <= size:
        return text
    cut = max(0, size)
    # Never split a multi-byte character: that would turn text into "binary".
    while 0 < cut < len(text) and text[cut] & 0xC0 == 0x80:
        cut -= 1
    for back in range(cut, max(0, cut - _BOUNDARY_WINDOW), -1):
        if text[back - 1] in _SEPARATORS:
            return text[:back]
    return text[:cut]


def fit(
    raw: bytes, budget: int, encoded_size: Callable[[bytes], int]
) -> bytes:
    """Return the longest prefix of ``raw`` (found in a few tries) whose record,
    as measured by ``encoded_size(prefix)``, is at most ``budget`` bytes.

    Escaping (``\\u0001`` is 6 bytes) and base64 (4/3) make the encoded size
    of a prefix unknown in advance: each try shrinks the prefix by the ratio
    it overshot. Returns ``b""`` if even the empty record is too large.

    >>> fit(b"a" * 100, 50, lambda p: len(p) * 2 + 10)
    b'aaaaaaaaaaaaaaaaaaa'
    """
    size = encoded_size(raw)
    if size <= budget:
        return raw
    prefix = raw
    for _ in range(8):
        overhead = encoded_size(b"")
        if overhead > budget:
            return b""
        room = budget - overhead
        ratio = max(1.0, (size - overhead) / max(1, len(prefix)))
        prefix = cut_at_boundary(raw, int(room / ratio * 0.98))
        size = encoded_size(prefix)
        if size <= budget:
            return prefix
    return b""


class Redactor:
    """Replace personal data in a dead letter's raw message (see the module docstring).

    :arg personal_fields: dotted paths (``traits.email``); their leaf names
        are personal wherever they appear.
    :arg hash_value: the salted hash that stands for a personal value.
    """

    def __init__(self, personal_fields: tuple[str, ...], hash_value: Callable[[str], str]) -> None:
        self._leaves = frozenset(p.split(".")[-1] for p in personal_fields)
        self._hash = hash_value
        self.names = self.names_pattern(self._leaves)

    @staticmethod
    def names_pattern(leaves: frozenset[str]) -> re.Pattern[bytes] | None:
        """Return the pattern of ``"name": value`` for these field names (``None`` if none).

        The value is a string (possibly cut before its closing quote) or a bare
        token; possessive repetition keeps it linear.
        """
        if not leaves:
            return None
        names = b"|".join(re.escape(n.encode("utf-8")) for n in sorted(leaves))
        return re.compile(rb'("(?:' + names + rb')"\s*+:\s*+)(?:"(?:[^"\\]|\\.)*+"?|[^\s,}\]]++)')

    def text(self, raw: bytes) -> bytes:
        """Return text that is not JSON with personal data masked."""
        return scrub_text(raw, self.names)

    def document(self, doc: Any) -> tuple[Any, bool]:
        """Return ``doc`` (parsed JSON, changed in place) with personal data
        hashed or masked, and whether anything changed.

        Iterative (no recursion limit) and linear in the document's size.

        >>> r = Redactor(("traits.email",), lambda v: "h")
        >>> r.document([{"traits": {"email": "a@b.co"}, "note": "mail a@b.co"}])
        ([{'traits': {'email': 'hash:h'}, 'note': 'mail [redacted-email]'}], True)
        """
        if isinstance(doc, str):
            clean = self._string(doc)
            return clean, clean is not doc
        changed = False
        stack = [doc]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                for key, value in node.items():
                    if key in self._leaves and value is not None:
                        node[key] = "hash:" + self._hash(str(value))
                        changed = True
                    elif isinstance(value, str):
                        clean = self._string(value)
                        if clean is not value:
                            node[key] = clean
                            changed = True
                    elif isinstance(value, (dict, list)):
                        stack.append(value)
            elif isinstance(node, list):
                for index, value in enumerate(node):
                    if isinstance(value, str):
                        clean = self._string(value)
                        if clean is not value:
                            node[index] = clean
                            changed = True
                    elif isinstance(value, (dict, list)):
                        stack.append(value)
        return doc, changed

    @staticmethod
    def _string(value: str) -> str:
        if "@" not in value:
            return value
        data = value.encode("utf-8")
        clean = _EMAIL.sub(_mask_email, data)
        return value if clean == data else clean.decode("utf-8")
