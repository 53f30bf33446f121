"""``/api/v1/tokens``: list, create (the token is shown once) and revoke your own API tokens."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.urls import path
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import extend_schema
from rest_framework import generics, permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import WriteThrottle
from webapp.auth import create_token, revoke_token
from webapp.models import ApiToken


class ApiTokenSerializer(serializers.ModelSerializer[ApiToken]):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
        read_only_fields = ["id", "prefix", "created_at", "last_used_at", "revoked_at"]

    def validate_name(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("a token needs a name")
        return value.strip()


class NewApiTokenSerializer(ApiTokenSerializer):
    token = serializers.CharField(read_only=True, help_text="Shown once; store it now.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]


class TokenListView(generics.ListCreateAPIView[ApiToken]):
    permission_classes = [permissions.IsAuthenticated]
    serializer_class = ApiTokenSerializer
    throttle_classes = [WriteThrottle]

    def get_queryset(self) -> Any:
        return ApiToken.objects.filter(user_id=self.request.user.pk or 0)

    @extend_schema(request=ApiTokenSerializer, responses={201: NewApiTokenSerializer})
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = ApiTokenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        assert isinstance(request.user, User)
        row, token = create_token(request.user, serializer.validated_data["name"])
        body = NewApiTokenSerializer(row).data
        body["token"] = token
        return Response(body, status=201)


class TokenDetailView(generics.RetrieveDestroyAPIView[ApiToken]):
    permission_classes = [permissions.IsAuthenticated]
    serializer_class = ApiTokenSerializer
    throttle_classes = [WriteThrottle]

    def get_queryset(self) -> Any:
        return ApiToken.objects.filter(user_id=self.request.user.pk or 0)

    def perform_destroy(self, instance: ApiToken) -> None:
        revoke_token(instance)


urlpatterns = [
    path("tokens", TokenListView.as_view(), name="api-tokens"),
    path("tokens/<int:pk>", TokenDetailView.as_view(), name="api-token"),
]


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """Tells drf-spectacular how ``Authorization: Bearer <token>`` looks in the OpenAPI schema."""

    target_class = "webapp.auth.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "An API token (ca_...)."}
