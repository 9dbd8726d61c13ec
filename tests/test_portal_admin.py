"""Staff's side of the self-service page in the admin: deciding requested payment plans,
the late-payment feedback list, revoking a customer's links."""

import datetime

from django.test import Client
from django.utils import timezone

from dunning.models import CaseEvent, Feedback, PaymentPlan
from dunning.portal.tokens import make_token
from dunning.testing import PortalClient

PLANS = "/admin/dunning/paymentplan/"
ONE_DAY = datetime.timedelta(days=1)


def requested_plan(case):
    """A customer asks for a two-instalment plan on their page (nothing auto-approved)."""
    PortalClient().post(f"/dunning/portal/{make_token(case.customer_id)}/", {
        "action": "plan", "instalments": "2",
        "first": (timezone.localdate() + ONE_DAY).isoformat()})
    return PaymentPlan.objects.get(case=case)


def test_staff_approve_a_requested_plan_in_the_admin(admin_client, boss, case):
    plan = requested_plan(case)
    assert plan.status == PaymentPlan.Status.REQUESTED
    listing = admin_client.get(PLANS, {"status": "requested"})
    assert listing.status_code == 200 and str(case) in listing.content.decode()
    admin_client.post(PLANS, {"action": "approve_plans", "_selected_action": [plan.pk]})
    plan.refresh_from_db()
    case.refresh_from_db()
    assert plan.status == PaymentPlan.Status.ACTIVE and not plan.auto_approved
    assert case.paused_until == timezone.localdate() + ONE_DAY + 3 * ONE_DAY
    assert CaseEvent.objects.get(case=case, kind="plan-approved").actor == boss


def test_staff_decline_a_requested_plan_and_dunning_goes_on(admin_client, boss, case):
    plan = requested_plan(case)
    admin_client.post(PLANS, {"action": "decline_plans", "_selected_action": [plan.pk]})
    plan.refresh_from_db()
    case.refresh_from_db()
    assert plan.status == PaymentPlan.Status.DECLINED and plan.decided_at is not None
    assert case.paused_until is None
    note = CaseEvent.objects.get(case=case, kind="note")
    assert note.message == "Payment plan declined." and note.actor == boss
    # Decided once: approving it afterwards changes nothing.
    admin_client.post(PLANS, {"action": "approve_plans", "_selected_action": [plan.pk]})
    plan.refresh_from_db()
    assert plan.status == PaymentPlan.Status.DECLINED


def test_deciding_plans_needs_the_case_permission(staff_client, django_user_model, case):
    from django.contrib.auth.models import Permission

    plan = requested_plan(case)
    user = django_user_model.objects.get(username="staff")
    user.user_permissions.add(Permission.objects.get(codename="view_paymentplan"))
    assert staff_client.get(PLANS).status_code == 200
    staff_client.post(PLANS, {"action": "approve_plans", "_selected_action": [plan.pk]})
    plan.refresh_from_db()
    assert plan.status == PaymentPlan.Status.REQUESTED
    assert staff_client.get(f"{PLANS}add/").status_code == 403


def test_feedback_is_listed_for_staff(admin_client, case):
    PortalClient().post(f"/dunning/portal/{make_token(case.customer_id)}/", {
        "action": "feedback", "reason": "cash-flow", "text": "Salary comes on the 15th"})
    assert Feedback.objects.get().reason == "cash-flow"
    listing = admin_client.get("/admin/dunning/feedback/", {"reason": "cash-flow"})
    assert "Salary comes on the 15th" in listing.content.decode()


def test_revoking_the_links_of_a_case(admin_client, boss, case):
    link = f"/dunning/portal/{make_token(case.customer_id)}/"
    assert Client().get(link).status_code == 200
    admin_client.post(f"/admin/dunning/case/{case.pk}/act/revoke_portal_links/")
    assert Client().get(link).status_code == 404
    note = CaseEvent.objects.get(case=case, kind="note")
    assert note.message == "Self-service links revoked." and note.actor == boss
