"""The REST API on a host with its own models (run with --ds=tests.settings_host)."""

from decimal import Decimal

from django.core.cache import cache

from dunning.models import Case

API = "/dunning/api/v1"


def post(client, url, data):
    return client.post(url, data, content_type="application/json")


def test_cases_show_the_hosts_customer_and_invoices(admin_client, make_account, make_charge, run):
    cache.clear()
    account = make_account(name="Hostie", email="hostie@example.com")
    make_charge(account, total="100.00", paid="30.00", ref="CH-X")
    run(1)
    case = Case.objects.get()
    listed = admin_client.get(f"{API}/cases/?search=hostie").json()["results"]
    assert [c["id"] for c in listed] == [case.pk]
    detail = admin_client.get(f"{API}/cases/{case.pk}/").json()
    assert detail["customer"]["email"] == "hostie@example.com"
    assert detail["invoices"][0]["number"] == "CH-X"
    assert Decimal(detail["invoices"][0]["amount_due"]) == Decimal("70.00")
    assert admin_client.get(f"{API}/cases/?search=CH-X").json()["count"] == 1


def test_a_dispute_names_one_of_the_hosts_open_invoices_of_the_case(
        admin_client, make_account, make_charge, run):
    """Issue 14 on a host's own models: the open invoices are the adapter's (total - paid
    > 0 of the case's account)."""
    cache.clear()
    account = make_account(name="Hostie", email="hostie@example.com")
    make_charge(account, total="100.00", paid="30.00", ref="CH-OPEN")
    make_charge(account, total="50.00", paid="50.00", ref="CH-PAID")
    make_charge(make_account(name="Other", email="other@example.com"), ref="CH-OTHER")
    run(1)
    case = Case.objects.get(customer_id=account.pk)
    for number in ("CH-PAID", "CH-OTHER", "CH-NONE"):
        response = post(admin_client, f"{API}/cases/{case.pk}/dispute/",
                        {"invoice_number": number, "reason": "r"})
        assert response.status_code == 400, number
        assert "is not an open invoice of" in response.json()["invoice_number"][0]
    response = post(admin_client, f"{API}/cases/{case.pk}/dispute/",
                    {"invoice_number": "CH-OPEN", "reason": "r"})
    assert response.status_code == 200
    assert [d["invoice_number"] for d in response.json()["disputes"]] == ["CH-OPEN"]


def test_bulk_is_not_for_swapped_models(admin_client):
    cache.clear()
    response = post(admin_client, f"{API}/invoices/bulk/", {"invoices": []})
    assert response.status_code == 404 and "own model" in response.json()["detail"]


def test_invoice_paid_resolves_after_the_host_recorded_it(admin_client, make_account,
                                                          make_charge, run, mailoutbox):
    cache.clear()
    account = make_account(email="payer@example.com")
    charge = make_charge(account, total="50.00", ref="CH-P")
    run(1)
    refused = post(admin_client, f"{API}/payment-events/",
                   {"type": "invoice.paid", "invoice": "CH-P", "amount_due": "0"})
    assert refused.status_code == 400 and "amount_due" in refused.json()
    charge.paid = charge.total
    charge.save()
    body = post(admin_client, f"{API}/payment-events/",
                {"type": "invoice.paid", "invoice": "CH-P"}).json()
    assert body["case"]["status"] == "resolved" and body["run"]["resolved"] == 1
    assert "payment-received" in mailoutbox[-1].tags
