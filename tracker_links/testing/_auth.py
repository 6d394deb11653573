"""Who is calling: the ``Authorization`` and organization headers, and the token's user."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from ._payloads import ROBOT, FakeUser, Reply, error, user_by_login

__all__ = ["Auth"]


class Auth:
    """Checks a request's credentials; gives the user its token belongs to.

    ``token``: if set, the one accepted token (any ``OAuth``/``Bearer`` one otherwise).
    ``users``: a mapping token -> login; if set, only those tokens (and ``token``) are
    accepted, each as its user. The default user (``token``'s, or any token's when neither is
    set) is ``robot``.
    """

    def __init__(self, token: str | None = None, users: Mapping[str, str] | None = None) -> None:
        self.token = token
        self.users = users

    @property
    def users(self) -> Mapping[str, str] | None:
        return self._users

    @users.setter
    def users(self, value: Mapping[str, str] | None) -> None:
        if value is not None:
            for tok, login in value.items():
                if not isinstance(tok, str) or not tok or not isinstance(login, str) or not login:
                    raise ValueError("users must map non-empty token strings to login strings")
            value = dict(value)
        self._users = value

    def check(self, headers: Mapping[str, str]) -> Reply | FakeUser:
        """The error to answer, or the calling user."""
        auth = headers.get("authorization")
        if not auth:
            return error(401, "Authorization required: send 'Authorization: OAuth <token>'")
        scheme, _, credential = auth.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() not in ("oauth", "bearer") or not credential:
            return error(
                401, "Malformed Authorization header: expected 'OAuth <token>' or 'Bearer <token>'"
            )
        user = ROBOT
        users = self._users
        if users is not None and credential in users:
            user = user_by_login(users[credential])
        elif self.token is not None:
            if not hmac.compare_digest(credential.encode(), self.token.encode()):
                return error(401, "The token is not valid")
        elif users is not None:
            return error(401, "The token is not valid")
        org = headers.get("x-org-id")
        cloud = headers.get("x-cloud-org-id")
        if (org is None) == (cloud is None):
            return error(
                403,
                "Send exactly one organization header: X-Org-ID or X-Cloud-Org-ID"
                + ("" if org is None else " (both were sent)"),
            )
        if not (org or cloud or "").strip():
            return error(403, "The organization header is empty")
        return user
