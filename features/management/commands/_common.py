from __future__ import annotations

from django.core.management.base import CommandError

from features.models import TranscoderSet


def transcoder_set(model: str, set_slug: str | None) -> TranscoderSet:
    """The named set of ``model``, or its default set when ``set_slug`` is None."""
    from features.models import LanguageModel

    lm = LanguageModel.objects.filter(slug=model).first()
    if lm is None:
        raise CommandError(f"no model {model!r}; register it first (manage.py register_model)")
    if set_slug is None:
        if lm.default_transcoder_set is None:
            raise CommandError(f"model {model!r} has no default transcoder set; pass --set")
        return lm.default_transcoder_set
    found = lm.transcoder_sets.filter(slug=set_slug).first()
    if found is None:
        raise CommandError(f"model {model!r} has no transcoder set {set_slug!r}")
    return found
