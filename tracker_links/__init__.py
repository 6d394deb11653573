"""tracker-links: async Yandex Tracker issue links, one at a time or by the ten thousand."""

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
