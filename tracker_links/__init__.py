"""tracker-links: Yandex Tracker issue links from async Python, one or ten thousand at a time.

>>> from tracker_links import TrackerClient
>>> async def main() -> None:                                        # doctest: +SKIP
...     async with TrackerClient.from_env() as client:
...         await client.links.create("PROJ-12", "PROJ-7", "depends on")
...         report = await client.links.bulk_create(pairs, journal="links.jsonl")
...         print(report.summary())

Everything public is re-exported here; modules with a leading underscore are private.
"""

from typing import TYPE_CHECKING

from ._lazy import lazy_names as _lazy_names
from ._version import __version__

if TYPE_CHECKING:
    from ._client import TrackerClient
    from ._exceptions import (
        AuthError,
        ConflictError,
        InvalidInputError,
        NotFoundError,
        RateLimitError,
        ServerError,
        TrackerError,
        TransportError,
    )
    from ._models import (
        Direction,
        IssueRef,
        Link,
        LinkSpec,
        LinkType,
        Relationship,
        StatusRef,
        UserRef,
        register_link_type,
    )
    from ._plan import Plan
    from ._policy import RetryPolicy
    from ._quota import FileQuota, RedisQuota
    from ._reports import BulkReport, IssueLinks, LinksReport, Outcome, OutcomeStatus
    from ._service import LinkService

__all__ = [
    "AuthError",
    "BulkReport",
    "ConflictError",
    "Direction",
    "FileQuota",
    "InvalidInputError",
    "IssueLinks",
    "IssueRef",
    "Link",
    "LinkService",
    "LinkSpec",
    "LinkType",
    "LinksReport",
    "NotFoundError",
    "Outcome",
    "OutcomeStatus",
    "Plan",
    "RateLimitError",
    "RedisQuota",
    "Relationship",
    "RetryPolicy",
    "ServerError",
    "StatusRef",
    "TrackerClient",
    "TrackerError",
    "TransportError",
    "UserRef",
    "__version__",
    "register_link_type",
]

# Each public name is imported from its module on first use (PEP 562), so that importing a
# submodule alone (the pytest plugin, loaded by every pytest run) imports nothing heavy. The
# TYPE_CHECKING imports above are what type checkers see; this table must name the same homes
# (tests/test_fake_pytest_plugin.py resolves every name of __all__).
_HOME = {
    "TrackerClient": "_client",
    **dict.fromkeys(
        (
            "AuthError",
            "ConflictError",
            "InvalidInputError",
            "NotFoundError",
            "RateLimitError",
            "ServerError",
            "TrackerError",
            "TransportError",
        ),
        "_exceptions",
    ),
    **dict.fromkeys(
        (
            "Direction",
            "IssueRef",
            "Link",
            "LinkSpec",
            "LinkType",
            "Relationship",
            "StatusRef",
            "UserRef",
            "register_link_type",
        ),
        "_models",
    ),
    "Plan": "_plan",
    "RetryPolicy": "_policy",
    **dict.fromkeys(("FileQuota", "RedisQuota"), "_quota"),
    **dict.fromkeys(
        ("BulkReport", "IssueLinks", "LinksReport", "Outcome", "OutcomeStatus"), "_reports"
    ),
    "LinkService": "_service",
}


__getattr__, __dir__ = _lazy_names(__name__, globals(), _HOME, __all__)
