"""Build the dead letters of the input contract: personal data out, size bounded.

Split from :mod:`journeyflow.event_parser`, whose
:class:`~journeyflow.event_parser.EventParser` says *why* a message is not an
event; :class:`DeadLetters` makes the record that says so. A dead letter keeps
the message, redacted (:class:`~journeyflow.redact.Redactor`: personal values
become their salted hash, e-mails and phone numbers in other text are masked),
and its JSON encoding stays within ``max_dead_letter_bytes``, below the Kafka
producer's ``max_request_size``: a longer message keeps a prefix, its length
and its SHA-256 (see :mod:`journeyflow.redact`). The work is bounded by the
dead letter's size, not the message's.
"""

from __future__ import annotations

from typing import Any

import orjson

from journeyflow.events import MAX_ID_CHARS, MAX_REASON_CHARS, DeadLetter
from journeyflow.redact import Redactor, cut_at_boundary, digest, fit

__all__ = ["MIN_DEAD_LETTER_BYTES", "DeadLetters"]

#: The smallest bound a dead letter's encoding may be given.
MIN_DEAD_LETTER_BYTES = 1024


class DeadLetters:
    """Make dead letters with personal data replaced and their encoding bounded.

    :arg redactor: what replaces personal data in a message.
    :arg max_dead_letter_bytes: bound of every dead letter's JSON encoding.
    """

    def __init__(self, redactor: Redactor, max_dead_letter_bytes: int) -> None:
        if max_dead_letter_bytes < MIN_DEAD_LETTER_BYTES:
            msg = f"max_dead_letter_bytes must be >= {MIN_DEAD_LETTER_BYTES}; got {max_dead_letter_bytes} instead"
            raise ValueError(msg)
        self._redactor = redactor
        self._max_dead_letter_bytes = max_dead_letter_bytes

    def too_large(self, raw: bytes, source: str, reason: str) -> DeadLetter:
        """Return the dead letter of a message too large to parse: a redacted window of its prefix."""
        # Only a window of the prefix is ever looked at: the work is bounded
        # by the dead letter's size, not the message's.
        window = cut_at_boundary(raw, self._max_dead_letter_bytes + 1024)
        clean = self._redactor.text(window)
        return self._bounded("too_large", reason, clean, False, source, None, clean != window, raw)

    def letter(self, raw: bytes, source: str, code: str, reason: str, doc: Any = None) -> DeadLetter:
        """Return a dead letter for ``raw`` with personal data replaced by hashes
        and its encoding bounded by ``max_dead_letter_bytes``.

        ``doc`` is ``raw`` already decoded, if it could be.
        """
        if doc is None:
            try:
                doc = orjson.loads(raw)
            except orjson.JSONDecodeError:
                doc = None
        user = None
        if isinstance(doc, dict):
            candidate = doc.get("user_id") or doc.get("anonymous_id")
            if isinstance(candidate, str) and len(candidate) <= MAX_ID_CHARS:
                user = candidate
        if doc is not None:
            doc, redacted = self._redactor.document(doc)
            clean, complete = (orjson.dumps(doc) if redacted else raw), True
        else:
            window = cut_at_boundary(raw, self._max_dead_letter_bytes + 1024)
            clean, complete = self._redactor.text(window), len(window) == len(raw)
            redacted = clean != window
        return self._bounded(code, reason, clean, complete, source, user, redacted, raw)

    def _bounded(
        self,
        code: str,
        reason: str,
        clean: bytes,
        complete: bool,
        source: str,
        user: str | None,
        redacted: bool,
        raw: bytes,
    ) -> DeadLetter:
        """Return the dead letter, its ``raw`` cut to fit ``max_dead_letter_bytes``.

        ``clean`` is the redacted text, ``complete`` unless it is only a window
        of it; ``raw`` is the original, whose length and digest a cut dead
        letter keeps.
        """
        if len(reason) > MAX_REASON_CHARS:
            reason = reason[:MAX_REASON_CHARS] + "..."
        budget = self._max_dead_letter_bytes
        if complete:
            letter = DeadLetter(code, reason, clean, source, user, redacted)
            # Escaping makes a byte at most 6 ("\u0001"): small ones need no encoding to know.
            if (len(clean) + len(reason)) * 6 + 1024 <= budget or len(letter.to_json()) <= budget:
                return letter
        sha = digest(raw)

        def encoded(prefix: bytes) -> int:
            return len(DeadLetter(code, reason, prefix, source, user, redacted, len(raw), sha).to_json())

        return DeadLetter(code, reason, fit(clean, budget, encoded), source, user, redacted, len(raw), sha)
