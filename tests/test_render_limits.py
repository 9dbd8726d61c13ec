"""A staff-edited template cannot stall or flood a run (issue 13, part 4): rendering is
bounded in time and size, in the run's process, in the render pool and in the preview;
what can be seen when a template is saved is refused then."""

import datetime
import signal
import time
import zoneinfo

import pytest
from django.core.checks import run_checks
from django.forms import modelform_factory

from dunning import sandbox
from dunning.checks import check_render_limits
from dunning.engine.run import run_dunning
from dunning.exceptions import RenderLimitError
from dunning.messages.rendering import TRIP_AFTER, Renderer
from dunning.models import Case, CaseStep, MessageTemplate, Policy
from dunning.testing import override_dunning_settings
from tests.conftest import day

TemplateForm = modelform_factory(MessageTemplate, fields="__all__")

# The issue's template, verbatim but for the "…".
ISSUE_TEMPLATE = (
    '{% for a in "x"|ljust:"100000" %}{% for b in "x"|ljust:"100000" %}'
    "{{ customer.name }}{% endfor %}{% endfor %}"
)
# Within every limit that can be seen when it is saved (widths of 1,000, loops three
# deep), yet a billion iterations: only the time limit stops it.
SLOW_TEMPLATE = (
    '{% for a in "x"|ljust:"1000" %}{% for b in "x"|ljust:"1000" %}'
    '{% for c in "x"|ljust:"1000" %}{% if a == b %}{% endif %}{% endfor %}{% endfor %}'
    "{% endfor %}"
)
# Also saveable: grows a text of a million names.
FLOOD_TEMPLATE = (
    '{% for a in "x"|ljust:"1000" %}{% for b in "x"|ljust:"1000" %}'
    "{{ customer.name }} {% endfor %}{% endfor %}"
)

# "Now" at midday in the site's time zone on the day of the run.
NOON = datetime.datetime(2026, 3, 3, 12, 0, tzinfo=zoneinfo.ZoneInfo("Europe/Berlin"))
AS_OF = day(1)
assert NOON.date() == AS_OF


class Hung(BaseException):
    """Not an Exception: the run's per-message ``except Exception`` cannot swallow it."""


@pytest.fixture(autouse=True)
def no_hang():
    """Fail a test that would hang (the code before the limits rendered forever)."""

    def hung(signum, frame):
        raise Hung("the run did not finish within 120 s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, 120)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def policy(db):
    return Policy.objects.get(key="standard")


def form_data(policy, **fields):
    data = {
        "policy": policy.pk, "step_key": "custom-step", "channel": "email", "language": "en",
        "subject": "Reminder for {{ customer.name }}",
        "text_body": "Dear {{ customer.name }},\nyou owe {{ total }}.\n", "html_body": "",
    }
    data.update(fields)
    return data


def german_notice():
    return MessageTemplate.objects.get(policy__key="standard", step_key="initial-notice",
                                       channel="email", language="de")


def saved_by_staff(template, **fields):
    """``template`` changed through the admin's form (validated as staff save it)."""
    form = TemplateForm(instance=template, data={
        **{f: getattr(template, f) for f in ("subject", "text_body", "html_body", "step_key",
                                             "channel", "language", "variant", "weight")},
        "policy": template.policy_id, **fields,
    })
    assert form.is_valid(), form.errors
    return form.save()


def saved_around_validation(template, **fields):
    """``template`` changed without validation: saved by an older version, imported."""
    MessageTemplate.objects.filter(pk=template.pk).update(**fields)
    return MessageTemplate.objects.get(pk=template.pk)


class FakeClock:
    """A clock that moves on by ``step`` seconds whenever it is read: deadlines that do
    not depend on the machine's speed."""

    def __init__(self, step=0.001):
        self.now, self.step = 0.0, step

    def __call__(self):
        self.now += self.step
        return self.now


@pytest.fixture
def fake_clock(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(sandbox, "clock", clock)
    return clock


class Tpl:
    """A stand-in for a MessageTemplate (what Renderer.render reads)."""

    def __init__(self, text, html="", channel="email", pk=1):
        self.pk, self.updated_at, self.channel = pk, None, channel
        self.subject, self.text_body, self.html_body = "Hi {{ customer.name }}", text, html


CONTEXT = {"customer": {"name": "Ada", "language": "en"}, "days_overdue": 12}


# -- refused when saved ------------------------------------------------------------------


def test_the_issues_template_is_refused_in_the_admin(admin_client, policy):
    response = admin_client.post("/admin/dunning/messagetemplate/add/",
                                 form_data(policy, text_body=ISSUE_TEMPLATE))
    assert response.status_code == 200  # the form again, with its error
    assert ('line 1: ljust:"100000" builds a text 100,000 characters wide; at most 1,000 '
            "are allowed") in response.content.decode().replace("&quot;", '"')
    assert not MessageTemplate.objects.filter(step_key="custom-step").exists()
    # What messages need passes: small widths, invoices, their charges and totals.
    ordinary = ('{% for i in invoices %}{{ i.number|ljust:"12" }}{{ i.amount|rjust:"14" }}'
                '{% for t in totals %}{% for c in charges %}{{ c.label|center:"30" }}'
                '{% endfor %}{% endfor %}{% endfor %}{{ days_overdue|stringformat:"03d" }}')
    response = admin_client.post("/admin/dunning/messagetemplate/add/",
                                 form_data(policy, text_body=ordinary))
    assert response.status_code == 302
    assert MessageTemplate.objects.get(step_key="custom-step").text_body == ordinary


@pytest.mark.parametrize(("source", "expected"), [
    ('{{ customer.name|rjust:"5000" }}', 'rjust:"5000" builds a text 5,000 characters wide'),
    ('{{ customer.name|center:20000 }}', 'center:"20000" builds a text 20,000 characters wide'),
    ('{{ days_overdue|stringformat:"099999d" }}', "99,999 characters wide"),
    ('{{ days_overdue|floatformat:"-5000" }}', "5,000 characters wide"),
    ("{% for a in invoices %}{% for b in invoices %}{% for c in invoices %}"
     "{% for d in invoices %}{% endfor %}{% endfor %}{% endfor %}{% endfor %}",
     "line 2: loops are nested 4 deep; at most 3 are allowed"),
])
def test_what_builds_long_texts_is_refused_when_saved(policy, source, expected):
    form = TemplateForm(data=form_data(policy, text_body=f"Hello\n{source}\n"))
    assert not form.is_valid()
    assert expected in " ".join(form.errors["text_body"])


def test_a_template_larger_than_its_channel_allows_is_refused(policy):
    body = "Pay now. " * 500  # 4.4 KB: fine in an email, too long for a text message
    assert TemplateForm(data=form_data(policy, text_body=body)).is_valid()
    form = TemplateForm(data=form_data(policy, channel="sms", text_body=body))
    assert not form.is_valid()
    assert form.errors["text_body"] == [
        "The template is 4.4 KB, more than the 4 KB a rendered sms message may have."]
    big = "x" * (300 * 1024)
    form = TemplateForm(data=form_data(policy, html_body=big))
    assert form.errors["html_body"] == [
        "The template is 300 KB, more than the 256 KB a rendered email message may have."]


# -- bounded when rendered -----------------------------------------------------------------


def test_a_runaway_loop_stops_at_the_time_limit(fake_clock):
    with pytest.raises(RenderLimitError) as caught:
        Renderer().render(Tpl(SLOW_TEMPLATE), CONTEXT)
    assert str(caught.value) == "the template took longer than 2 s to render"
    assert 2 < fake_clock.now < 2.1  # stopped at the first check past the deadline


@override_dunning_settings(RENDER_TIME_LIMIT=300)  # the size stops it, however slow the machine
def test_a_flooding_loop_stops_at_the_size_limit():
    with pytest.raises(RenderLimitError) as caught:
        Renderer().render(Tpl(FLOOD_TEMPLATE), CONTEXT)
    assert str(caught.value) == "the rendered text grew past the 256 KB allowed"
    with override_dunning_settings(RENDER_SIZE_LIMITS={"email": 64 * 1024}), \
            pytest.raises(RenderLimitError) as caught:
        Renderer().render(Tpl("ok", html=FLOOD_TEMPLATE), CONTEXT)
    assert str(caught.value) == "the rendered HTML body grew past the 64 KB allowed"


def test_a_huge_text_is_measured_exactly():
    with pytest.raises(RenderLimitError) as caught:
        Renderer().render(Tpl("x" * (30 * 1024 * 1024)), CONTEXT)
    assert str(caught.value) == "the rendered text is 30.0 MB, more than the 256 KB allowed"
    # Bytes, not characters: 100,000 euro signs are 300,000 bytes.
    with pytest.raises(RenderLimitError) as caught:
        Renderer().render(Tpl("€" * 100_000), CONTEXT)
    assert str(caught.value) == "the rendered text is 293.0 KB, more than the 256 KB allowed"
    assert Renderer().render(Tpl("€" * 80_000), CONTEXT)[1].startswith("€€€")


def test_a_width_from_a_variable_is_refused_when_rendered():
    source = '{% with w="100000" %}{{ customer.name|ljust:w }}{% endwith %}'
    with pytest.raises(RenderLimitError) as caught:
        Renderer().render(Tpl(source), CONTEXT)
    assert str(caught.value) == ('ljust:"100000" builds a text 100,000 characters wide; at most '
                                 "1,000 are allowed")


def test_doubling_a_text_with_add_stops_at_the_size_limit():
    names = "bcdefghijklmnopqrstuvwxyz"
    source, previous = '{% with a="xxxxxxxxxxxxxxxx" %}', "a"
    for name in names:
        source += f"{{% with {name}={previous}|add:{previous} %}}"
        previous = name
    source += "{{ z|length }}" + "{% endwith %}" * (len(names) + 1)
    with pytest.raises(RenderLimitError) as caught:
        Renderer().render(Tpl(source), CONTEXT)
    assert "grew past the 256 KB allowed" in str(caught.value)


def test_join_is_refused_before_it_builds_a_text_too_large():
    source = ('{% with s="x"|ljust:"1000"|make_list sep="y"|ljust:"1000" %}'
              "{{ s|join:sep }}{% endwith %}")
    with pytest.raises(RenderLimitError, match="grew past the 256 KB allowed"):
        Renderer().render(Tpl(source), CONTEXT)


def test_a_tag_that_swallows_errors_cannot_hide_a_limit():
    # {% if %} turns any error of its condition into False; the limit still fails the render.
    source = '{% with w="100000" %}{% if customer.name|ljust:w == "x" %}x{% endif %}{% endwith %}'
    with pytest.raises(RenderLimitError, match="100,000 characters wide"):
        Renderer().render(Tpl(source), CONTEXT)


def test_each_channel_has_its_own_size_limit():
    text = "Pay now. " * 600  # 5.3 KB
    assert Renderer().render(Tpl(text, channel="email"), CONTEXT)[1].startswith("Pay now.")
    with pytest.raises(RenderLimitError, match="is 5.3 KB, more than the 4 KB allowed"):
        Renderer().render(Tpl(text, channel="sms"), CONTEXT)
    with override_dunning_settings(RENDER_SIZE_LIMITS={"sms": 8 * 1024}):
        assert Renderer().render(Tpl(text, channel="sms"), CONTEXT)


def test_a_template_over_a_limit_again_and_again_is_not_rendered_again(fake_clock):
    renderer = Renderer()
    slow = Tpl(SLOW_TEMPLATE)
    for _ in range(TRIP_AFTER):
        with pytest.raises(RenderLimitError, match="took longer than 2 s"):
            renderer.render(slow, CONTEXT)
    spent = fake_clock.now
    with pytest.raises(RenderLimitError) as caught:
        renderer.render(slow, CONTEXT)
    assert str(caught.value) == ("not rendered: the template took longer than 2 s to render "
                                 "for 3 customers in a row in this run")
    assert fake_clock.now == spent  # not even started
    # Another template of the run is rendered as ever.
    assert renderer.render(Tpl("Dear {{ customer.name }}", pk=2), CONTEXT)[1] == "Dear Ada\n"


def test_a_template_over_a_limit_for_some_customers_only_is_still_rendered_for_the_others():
    renderer = Renderer()
    per_name = Tpl('{% for a in customer.name|make_list %}{{ a|ljust:"1000" }}{% endfor %}',
                   channel="sms")
    small, big = {**CONTEXT}, {**CONTEXT, "customer": {"name": "Maximilian", "language": "en"}}
    for _ in range(TRIP_AFTER + 2):
        with pytest.raises(RenderLimitError):
            renderer.render(per_name, big)
        with pytest.raises(RenderLimitError):
            renderer.render(per_name, big)
        assert renderer.render(per_name, small)[1].startswith("A")


# -- a run ---------------------------------------------------------------------------------


def seed(overdue_customer, n, german_every):
    return [overdue_customer(name=f"Customer {i}", email=f"c{i}@example.com",
                             language="de" if i % german_every == 0 else "en")
            for i in range(n)]


@pytest.mark.django_db
def test_a_run_over_1000_customers_completes_for_all_the_others(overdue_customer, mailoutbox):
    """The issue's test: a runaway template saved by staff (German customers get it);
    every other customer gets their message, in normal time; the German ones fail
    alone, each with its reason, and their cases are flagged for a person."""
    seed(overdue_customer, 1000, german_every=10)  # 100 German customers
    saved_by_staff(german_notice(), text_body=SLOW_TEMPLATE)
    started = time.monotonic()
    with override_dunning_settings(RENDER_PROCESSES=1):
        result = run_dunning(AS_OF, now=NOON)
    elapsed = time.monotonic() - started
    assert result.sent == 900 and result.failed == 100
    assert len(mailoutbox) == 900
    assert all(m.to[0] != "c0@example.com" for m in mailoutbox)
    failed = CaseStep.objects.filter(status="failed", step_key="initial-notice")
    reasons = sorted(failed.values_list("reason", flat=True))
    timed_out = "the template took longer than 2 s to render"
    assert reasons.count(timed_out) == TRIP_AFTER
    assert reasons.count(f"not rendered: {timed_out} for 3 customers in a row in this run") == 97
    assert set(Case.objects.filter(needs_person=True).values_list("pk", flat=True)) == set(
        failed.values_list("case_id", flat=True))
    # Three renders stopped at 2 s each, then the template was given up on: the run took
    # its normal time plus six seconds, not hours (generous bound for a shared machine).
    assert elapsed < 6 + 60, elapsed


@pytest.mark.django_db
def test_the_issues_template_saved_around_validation_fails_alone_at_once(overdue_customer,
                                                                           mailoutbox):
    customers = seed(overdue_customer, 30, german_every=10)
    saved_around_validation(german_notice(), text_body=ISSUE_TEMPLATE)
    result = run_dunning(AS_OF, now=NOON)
    assert result.sent == 27 and result.failed == 3
    german = Case.objects.filter(customer_id__in=[customers[i].pk for i in (0, 10, 20)])
    assert all(case.needs_person for case in german)
    reasons = set(CaseStep.objects.filter(case__in=german).values_list("reason", flat=True))
    assert reasons <= {
        'ljust:"100000" builds a text 100,000 characters wide; at most 1,000 are allowed',
        'not rendered: ljust:"100000" builds a text 100,000 characters wide; at most 1,000 '
        "are allowed for 3 customers in a row in this run"}


@pytest.mark.django_db
def test_a_30_mb_email_is_not_sent(overdue_customer, mailoutbox):
    seed(overdue_customer, 3, german_every=2)  # customers 0 and 2 are German
    saved_around_validation(german_notice(), html_body="<p>" + "x" * (30 * 1024 * 1024))
    result = run_dunning(AS_OF, now=NOON)
    assert result.sent == 1 and [m.to[0] for m in mailoutbox] == ["c1@example.com"]
    assert CaseStep.objects.filter(status="failed").values_list("reason", flat=True)[0] == (
        "the rendered HTML body is 30.0 MB, more than the 256 KB allowed")


@pytest.mark.django_db
def test_the_render_pool_keeps_the_limits(overdue_customer, mailoutbox, monkeypatch):
    from dunning.engine import pool

    seed(overdue_customer, 40, german_every=4)  # 10 German customers
    saved_by_staff(german_notice(), text_body=SLOW_TEMPLATE)
    pooled, submit = [], pool.RenderPool.submit
    monkeypatch.setattr(pool.RenderPool, "submit",
                        lambda self, items: pooled.extend(items) or submit(self, items))
    with override_dunning_settings(RENDER_PROCESSES=2, RENDER_TIME_LIMIT=0.5):
        result = run_dunning(AS_OF, now=NOON, batch_size=8)
    assert result.sent == 30 and result.failed == 10
    reasons = list(CaseStep.objects.filter(status="failed").values_list("reason", flat=True))
    assert all("took longer than 0.5 s to render" in r for r in reasons), reasons
    assert len(pooled) == 32  # all but the first batch rendered by the workers
    assert Case.objects.filter(needs_person=True).count() == 10


# -- the preview ---------------------------------------------------------------------------


def test_the_preview_shows_the_limit_error(admin_client, db, fake_clock):
    template = saved_by_staff(german_notice(), text_body=SLOW_TEMPLATE)
    response = admin_client.get(f"/admin/dunning/messagetemplate/{template.pk}/preview/")
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"]]
    assert shown == ["The template cannot be rendered: the template took longer than 2 s to "
                     "render"]


def test_the_preview_shows_a_size_error(admin_client, db):
    template = saved_around_validation(german_notice(), text_body=ISSUE_TEMPLATE)
    response = admin_client.get(f"/admin/dunning/messagetemplate/{template.pk}/preview/")
    assert response.status_code == 200
    assert [str(m) for m in response.context["messages"]] == [
        'The template cannot be rendered: ljust:"100000" builds a text 100,000 characters '
        "wide; at most 1,000 are allowed"]


# -- settings --------------------------------------------------------------------------------


def test_the_default_limits_pass_the_checks():
    assert check_render_limits() == []


@pytest.mark.parametrize(("dunning", "error_id", "text"), [
    ({"RENDER_TIME_LIMIT": 0}, "dunning.E070", "above 0 and at most 300"),
    ({"RENDER_TIME_LIMIT": "2"}, "dunning.E070", "not '2'"),
    ({"RENDER_TIME_LIMIT": 3600}, "dunning.E070", "not 3600"),
    ({"RENDER_SIZE_LIMITS": 1000}, "dunning.E071", "must be a dict"),
    ({"RENDER_SIZE_LIMITS": {"fax": 1000}}, "dunning.E071", "'fax', which is not a channel"),
    ({"RENDER_SIZE_LIMITS": {"sms": 0}}, "dunning.E071", "['sms'] must be a whole number"),
])
def test_bad_limits_are_reported(dunning, error_id, text):
    with override_dunning_settings(**dunning):
        direct = check_render_limits()
        assert [m.id for m in direct] == [error_id]
        assert text in direct[0].msg and direct[0].hint
        assert error_id in [m.id for m in run_checks(tags=["dunning"])]
        # A bad setting does not break rendering: the default is used.
        assert Renderer().render(Tpl("Dear {{ customer.name }}"), CONTEXT)[1] == "Dear Ada\n"


def test_the_reasons_are_translated():
    from django.utils import translation

    with translation.override("de"), pytest.raises(RenderLimitError) as caught:
        Renderer().render(Tpl("x" * (300 * 1024)), CONTEXT)
    assert str(caught.value) == ("der gerenderte Text ist 300 KB groß, mehr als die erlaubten "
                                 "256 KB")


@pytest.mark.django_db
def test_a_worker_stuck_where_no_check_runs_is_killed_and_replaced(overdue_customer, mailoutbox,
                                                                     monkeypatch):
    """A render stuck outside the template (no cooperative check can run there): the
    watchdog kills its worker after RENDER_TIME_LIMIT * 3 + 1 s, that message fails, and
    new workers render everyone else."""
    from dunning.engine.run import DunningRun

    customers = seed(overdue_customer, 40, german_every=1000)
    stuck = {customers[25].pk, customers[33].pk}  # in later batches, rendered by workers
    render_item = DunningRun.render_item

    def sometimes_stuck(self, item):
        if item.customer_id in stuck:
            time.sleep(60)  # the code before the watchdog waited it out, then sent
        return render_item(self, item)

    monkeypatch.setattr(DunningRun, "render_item", sometimes_stuck)
    with override_dunning_settings(RENDER_PROCESSES=2, RENDER_TIME_LIMIT=0.5):
        result = run_dunning(AS_OF, now=NOON, batch_size=8)
    assert result.sent == 38 and result.failed == 2
    assert sorted(m.to[0] for m in mailoutbox) == sorted(
        c.email for c in customers if c.pk not in stuck)
    failed = CaseStep.objects.filter(status="failed")
    assert set(failed.values_list("case__customer_id", flat=True)) == stuck
    assert set(failed.values_list("reason", flat=True)) == {
        "the template took longer than 2.5 s to render; its render was stopped"}
    assert set(Case.objects.filter(needs_person=True).values_list("customer_id", flat=True)) \
        == stuck
