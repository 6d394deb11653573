"""tracker-links: Yandex Tracker issue links from async Python, one or ten thousand at a time.

>>> from tracker_links import TrackerClient
>>> async def main() -> None:                                        # doctest: +SKIP
...     async with TrackerClient.from_env() as client:
...         await client.links.create("PROJ-12", "PROJ-7", "depends on")
...         report = await client.links.bulk_create(pairs, journal="links.jsonl")
...         print(report.summary())

Everything public is re-exported here; modules with a leading underscore are private.
"""

from ._bulk import BulkReport, IssueLinks, LinksReport, Outcome, OutcomeStatus
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
from ._policy import RetryPolicy
from ._quota import FileQuota, RedisQuota
from ._service import LinkService

__version__ = "0.1.0"

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
