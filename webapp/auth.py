"""API tokens: ``Authorization: Bearer <token>``, stored hashed, shown once, revocable.

A token is ``ca_`` + 43 URL-safe characters (256 random bits). The database keeps its SHA-256
and the first 10 characters (to tell tokens apart in lists). ``last_used_at`` is written at most
once a minute per token, so a busy client does not turn every read into a write.

The token endpoints are in webapp/token_views.py: DRF reads DEFAULT_AUTHENTICATION_CLASSES (this
module) while defining its view classes, so this module must not define views itself.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.contrib.auth.models import User
from django.db.models import Q
from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from webapp.models import ApiToken

TOKEN_PREFIX = "ca_"
_LAST_USED_EVERY = timedelta(seconds=60)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(user: User, name: str) -> tuple[ApiToken, str]:
    """A new token for ``user``; the plain token is returned once and never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken.objects.create(user=user, name=name, prefix=token[:10], digest=digest(token))
    return row, token


def revoke_token(row: ApiToken) -> None:
    ApiToken.objects.filter(pk=row.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[User, ApiToken] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <token>'")
        try:
            token = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("invalid token") from None
        row = ApiToken.objects.active().select_related("user").filter(digest=digest(token)).first()
        if row is None or not row.user.is_active:
            raise exceptions.AuthenticationFailed("invalid or revoked token")
        now = timezone.now()
        if row.last_used_at is None or now - row.last_used_at > _LAST_USED_EVERY:
            ApiToken.objects.filter(pk=row.pk).filter(
                Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - _LAST_USED_EVERY)
            ).update(last_used_at=now)
        return row.user, row

    def authenticate_header(self, request: Request) -> str:
        return self.keyword
