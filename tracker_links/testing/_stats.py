"""FakeStats: the counters of what the fake saw, for assertions and benchmark reports."""

from __future__ import annotations

from collections import Counter
from typing import Any

__all__ = ["FakeStats"]


class FakeStats:
    """What the fake saw, for assertions and benchmark reports.

    ``requests`` counts answered requests by ``(method, status)``; a dropped request is counted
    in ``dropped`` only. ``by_route`` counts the requests that reached a route (past the auth,
    rate-limit and fault checks) by ``(method, route)``, routes being ``"links.create"``,
    ``"links.import"``, ``"links.list"``, ``"links.get"``, ``"links.delete"``, ``"issue.get"``,
    ``"search"``, ``"count"``, ``"linktypes"``, ``"myself"``. The other counters:

    - ``rate_limited``: 429 answers sent (rate limit and ``max_inflight``);
    - ``peak_inflight``: most requests in flight at once;
    - ``duplicates_refused``: creates refused as an existing link (``duplicate_status``);
    - ``duplicates_created``: links stored although an identical one existed
      (``duplicate_status=None``): each is a duplicate a client caused;
    - ``dropped``: connections closed without an answer (``drop_rate``);
    - ``injected_failures``: injected 5xx answers (``fail_rate``);
    - ``creates`` / ``deletes``: links actually stored / removed through the API (an import
      counts in ``creates`` and in ``imports``);
    - ``forbidden``: writes answered 403 (``forbidden_queues``, ``import_forbidden``);
    - ``malformed_pages``: search pages sent malformed on purpose (``malformed_search``);
    - ``redirects``: requests on a moved issue's old key answered with a redirect.

    >>> stats.count("POST", 201), stats.count(status=429), stats.total   # doctest: +SKIP
    (100, 3, 112)
    """

    __slots__ = (
        "by_route",
        "creates",
        "deletes",
        "dropped",
        "duplicates_created",
        "duplicates_refused",
        "forbidden",
        "imports",
        "injected_failures",
        "malformed_pages",
        "peak_inflight",
        "rate_limited",
        "redirects",
        "requests",
    )

    def __init__(self) -> None:
        self._zero()

    def _zero(self) -> None:
        self.requests: Counter[tuple[str, int]] = Counter()
        self.by_route: Counter[tuple[str, str]] = Counter()
        self.rate_limited = 0
        self.peak_inflight = 0
        self.duplicates_refused = 0
        self.duplicates_created = 0
        self.dropped = 0
        self.injected_failures = 0
        self.creates = 0
        self.deletes = 0
        self.imports = 0
        self.forbidden = 0
        self.malformed_pages = 0
        self.redirects = 0

    def count(self, method: str | None = None, status: int | None = None) -> int:
        """Answered requests with this method and/or status (``None`` matches any)."""
        if method is not None and status is not None:
            return self.requests[(method.upper(), status)]
        m = method.upper() if method is not None else None
        return sum(
            n
            for (meth, st), n in self.requests.items()
            if (m is None or meth == m) and (status is None or st == status)
        )

    @property
    def total(self) -> int:
        """Every request received: the answered ones plus the dropped ones."""
        return sum(self.requests.values()) + self.dropped

    def reset(self) -> None:
        """Zero every counter (the stored links and issues are kept)."""
        self._zero()

    def as_dict(self) -> dict[str, Any]:
        """The counters as plain JSON-ready data (``requests`` keyed ``"POST 201"``)."""
        return {
            "total": self.total,
            "requests": {f"{m} {s}": n for (m, s), n in sorted(self.requests.items())},
            "by_route": {f"{m} {r}": n for (m, r), n in sorted(self.by_route.items())},
            "rate_limited": self.rate_limited,
            "peak_inflight": self.peak_inflight,
            "duplicates_refused": self.duplicates_refused,
            "duplicates_created": self.duplicates_created,
            "dropped": self.dropped,
            "injected_failures": self.injected_failures,
            "creates": self.creates,
            "deletes": self.deletes,
            "imports": self.imports,
            "forbidden": self.forbidden,
            "malformed_pages": self.malformed_pages,
            "redirects": self.redirects,
        }

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items() if k != "by_route")
        return f"FakeStats({fields})"
