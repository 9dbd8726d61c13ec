"""Receivers of the in-app notices (docs/inapp.md): a resolved case takes its banners
away, whether or not its policy has an in-app step."""

from django.dispatch import receiver

from ..signals import case_resolved


@receiver(case_resolved, dispatch_uid="dunning.resolve_inapp_notices")
def resolve_inapp_notices(*, case, **kwargs):
    """Every unresolved notice of the case's customer (but those of another case that is
    still open, and the thank-you notice) is resolved: the banner disappears."""
    from ..models import Notice

    Notice.objects.resolve_for(case.customer_id, case=case)
