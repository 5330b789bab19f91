"""Invalidate every process's policy copy when configuration changes."""

from __future__ import annotations

from django.db import transaction
from django.db.models.signals import post_delete, post_save

from apps.policies.models import Application, Policy, Rule
from apps.policies.snapshot import bump_version
from apps.tokens.models import ServiceToken


def _changed(sender, **kwargs) -> None:
    transaction.on_commit(bump_version)


for model in (Application, Policy, Rule, ServiceToken):
    post_save.connect(
        _changed, sender=model, dispatch_uid=f"bump-{model.__name__}-save"
    )
    post_delete.connect(
        _changed, sender=model, dispatch_uid=f"bump-{model.__name__}-del"
    )
