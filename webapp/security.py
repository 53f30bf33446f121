"""The Content-Security-Policy middleware: django-csp's, with frames allowed where embeds are.

A response that opts out of X-Frame-Options (the explorer's ``?embed=1`` view, which other sites
frame) gets ``frame-ancestors *`` too, so the two headers always agree on who may frame a page.
"""

from __future__ import annotations

from csp.middleware import CSPMiddleware
from django.http import HttpRequest, HttpResponseBase


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        if getattr(response, "xframe_options_exempt", False):
            replace = getattr(response, "_csp_replace", None) or {}
            response._csp_replace = {"frame-ancestors": ["*"], **replace}  # type: ignore[attr-defined]
        return super().process_response(request, response)
