"""Rendering in worker processes (DUNNING["RENDER_PROCESSES"] > 1) sends exactly what an
in-process run sends."""

import pytest

from dunning.engine import pool as pool_module
from dunning.engine.run import run_dunning
from dunning.models import CaseStep
from dunning.testing import override_dunning_settings
from tests.conftest import DAY0, day


def seed(overdue_customer, n):
    return [
        overdue_customer(name=f"Pool {i}", email=f"pool{i}@example.com",
                         language="de" if i % 3 == 0 else "en", amount=f"{100 + i}.50")
        for i in range(n)
    ]


def messages(outbox):
    return sorted((m.to[0], m.subject, m.body, m.alternatives[0][0]) for m in outbox)


@pytest.mark.django_db
def test_a_pooled_run_sends_what_an_in_process_run_sends(overdue_customer, mailoutbox, monkeypatch):
    customers = seed(overdue_customer, 45)
    rendered_by_workers = []
    submit = pool_module.RenderPool.submit

    def counting_submit(self, items):
        rendered_by_workers.extend(items)
        return submit(self, items)

    monkeypatch.setattr(pool_module.RenderPool, "submit", counting_submit)
    with override_dunning_settings(RENDER_PROCESSES=2):
        result = run_dunning(day(1), batch_size=10)
    assert result.sent == 45 and result.failed == 0
    # The first batch is rendered in-process; the other 35 messages by the workers.
    assert len(rendered_by_workers) == 35
    pooled = messages(mailoutbox)
    assert len({m[0] for m in pooled}) == 45
    assert CaseStep.objects.filter(status="sent", step_key="initial-notice").count() == 45
    # The same day again, rendered in-process, on fresh cases: identical messages.
    CaseStep.objects.all().delete()
    from dunning.models import Case

    Case.objects.all().delete()
    mailoutbox.clear()
    run_dunning(day(1), batch_size=10)
    assert messages(mailoutbox) == pooled
    german = [m for m in pooled if m[0] == customers[0].email][0]
    assert "Zahlungserinnerung" in german[1] and "100,50" in german[2]


@pytest.mark.django_db
def test_a_failing_pool_falls_back_to_rendering_in_process(overdue_customer, mailoutbox, monkeypatch):
    seed(overdue_customer, 30)

    def broken(futures):
        raise RuntimeError("worker died")

    monkeypatch.setattr(pool_module.RenderPool, "results", staticmethod(broken))
    with override_dunning_settings(RENDER_PROCESSES=2):
        result = run_dunning(day(1), batch_size=10)
    assert result.sent == 30
    assert sorted(m.to[0] for m in mailoutbox) == sorted(f"pool{i}@example.com" for i in range(30))
    assert DAY0  # the fixture's due date is DAY0: one day overdue on day(1)


@pytest.mark.django_db
def test_a_pool_that_cannot_take_work_falls_back_for_the_rest_of_the_run(
    overdue_customer, mailoutbox, monkeypatch
):
    seed(overdue_customer, 30)
    submitted = []

    def refuse(self, items):
        submitted.append(len(items))
        raise OSError("cannot fork")

    monkeypatch.setattr(pool_module.RenderPool, "submit", refuse)
    with override_dunning_settings(RENDER_PROCESSES=2):
        result = run_dunning(day(1), batch_size=10)
    assert result.sent == 30 and len(mailoutbox) == 30
    assert submitted == [10]  # tried once, then in-process for the rest of the run


@pytest.mark.django_db
def test_no_pool_in_a_daemonic_process(monkeypatch):
    import multiprocessing

    monkeypatch.setattr(multiprocessing.current_process(), "daemon", True, raising=False)
    assert pool_module.RenderPool.start(object(), 2) is None
