"""A/B variants of a step's message, and how each variant does.

A step's message can have **variants**: message templates of the same policy, step key and
channel with different ``MessageTemplate.variant`` values (``""`` is the control, A). Each
variant has its own languages; its ``weight`` is its share of the customers, relative to
the step's other variants (the largest weight among a variant's templates counts).

**Assignment** (:meth:`StepTemplates.choose`) is deterministic and needs no query: the case
pk and the step key are hashed (BLAKE2b) to a point in [0, 1), and the point falls into a
variant by cumulative weight over the variants in name order (the control first). The same
case and step always get the same variant, in every process and on every run; a message
queued again (the outbox's drain, "send again") uses the variant its step recorded
(``CaseStep.variant``). Different steps of one case are assigned independently.

**Languages**: a variant's template is chosen as without variants: the customer's
language, its base language, the site's language, English. The draw is made among the
variants that have a template in one of these; when none has, among all of them, and
the variant's first language (in code order) is used, as without variants.

**Report** (:func:`variant_report`): per policy, step and variant the messages sent, the
cases recovered (resolved within ``RECOVERY_DAYS`` days after the step), the recovery
rate with its 95 % Wilson score interval, and a two-proportion z-test against the
control. One aggregate query. See docs/variants.md.
"""

from __future__ import annotations

import datetime
import hashlib
import math
from collections import defaultdict

from django.db.models import Count, F, Q

from ..formatting import default_language
from ..models import Case, CaseStep

#: The control variant (A).
CONTROL = ""
#: A step counts as recovering the case when it is resolved at most this many days after.
RECOVERY_DAYS = 14
#: The standard normal quantile of 97.5 %: a two-sided 95 % interval.
Z_95 = 1.959963984540054
#: The thank-you message is not a dunning step.
PAYMENT_RECEIVED = "payment-received"


# -- choosing a template -----------------------------------------------------------------


def language_codes(language):
    """The languages a message is looked for in, in order: the customer's, its base
    language, the site's, the site's base language, English."""
    language = (language or "").lower().replace("_", "-")
    site = default_language().lower()
    codes = (language, language.split("-")[0], site, site.split("-")[0], "en")
    return [code for code in dict.fromkeys(codes) if code]


def pick_template(langs, language, *, strict=False):
    """Of ``langs`` ({language: template}), the one in the first of
    :func:`language_codes` it has; else (unless ``strict``) the one of the first language
    code; None when there is none."""
    if not langs:
        return None
    for code in language_codes(language):
        if code in langs:
            return langs[code]
    return None if strict else langs[sorted(langs)[0]]


def assignment_point(case_pk, step_key):
    """The point in [0, 1) of a case's step: the first 8 bytes of the BLAKE2b hash of
    ``"<case pk>:<step key>"`` over 2**64. Stable across processes and Python versions
    (unlike ``hash()``), and evenly spread."""
    digest = hashlib.blake2b(f"{case_pk}:{step_key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def by_weight(point, weighted):
    """The name of ``weighted`` ([(name, weight), ...]) whose share of the cumulative
    weight ``point`` (in [0, 1)) falls into."""
    total = sum(weight for _name, weight in weighted)
    target, cumulative = point * total, 0
    for name, weight in weighted:
        cumulative += weight
        if target < cumulative:
            return name
    return weighted[-1][0]  # point * total rounded up to the total


class StepTemplates:
    """The templates of one step (or of ``payment-received``) in one channel, by
    variant: ``arms`` {variant: {language: template}}, ``weights`` {variant: weight}."""

    __slots__ = ("arms", "weights")

    def __init__(self, templates=()):
        self.arms, self.weights = {}, {}
        for template in templates:
            self.add(template)

    def add(self, template):
        variant = template.variant or CONTROL
        self.arms.setdefault(variant, {})[template.language.lower()] = template
        self.weights[variant] = max(self.weights.get(variant, 0), max(template.weight or 1, 1))

    def __bool__(self):
        return bool(self.arms)

    @property
    def variants(self):
        """The variant names in order, the control first."""
        return sorted(self.arms)

    def choose(self, language, *, case_pk=None, step_key="", variant=None):
        """``(variant, template)`` for a customer speaking ``language``: the recorded
        ``variant`` when it still has templates, else the case's draw (see the module
        docstring). ``case_pk`` None (a case a dry run would open, no pk yet) with a
        choice to make: ``(None, the first candidate's template)``."""
        if not self.arms:
            return CONTROL, None
        if variant is not None and variant in self.arms:
            return variant, pick_template(self.arms[variant], language)
        names = self.variants
        candidates = [v for v in names if pick_template(self.arms[v], language, strict=True)]
        candidates = candidates or names
        if len(candidates) == 1:
            chosen = candidates[0]
        elif case_pk is None:
            return None, pick_template(self.arms[candidates[0]], language)
        else:
            chosen = by_weight(assignment_point(case_pk, step_key),
                               [(v, self.weights[v]) for v in candidates])
        return chosen, pick_template(self.arms[chosen], language)


# -- statistics --------------------------------------------------------------------------


def wilson_interval(successes, trials, z=Z_95):
    """The Wilson score interval of a proportion ``successes / trials`` (95 % with the
    default ``z``); None without trials.

    With p = successes / n::

        centre = (p + z²/2n) / (1 + z²/n)
        half   = z / (1 + z²/n) * sqrt(p(1 - p)/n + z²/4n²)

    and the interval [centre - half, centre + half], which stays within [0, 1] and,
    unlike p ± z·sqrt(p(1 - p)/n), is not empty at 0 or n successes.
    """
    if not trials:
        return None
    n, p = trials, successes / trials
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def two_proportion_p_value(successes_a, trials_a, successes_b, trials_b):
    """The two-sided p-value of the two-proportion z-test of "both rates are the same"
    (pooled variance); None when a side has no trials.

    With p = (x_a + x_b) / (n_a + n_b)::

        z = (x_a/n_a - x_b/n_b) / sqrt(p(1 - p)(1/n_a + 1/n_b))
        p-value = erfc(|z| / sqrt(2))          (= 2 * (1 - Phi(|z|)))

    When every case of both sides recovered, or none did, the rates are equal: 1.0. The
    normal approximation wants some recoveries and non-recoveries on each side (say at
    least 5 of each); below that, read the p-value as a rough guide.
    """
    if not trials_a or not trials_b:
        return None
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    variance = pooled * (1 - pooled) * (1 / trials_a + 1 / trials_b)
    if variance <= 0:
        return 1.0
    z = (successes_a / trials_a - successes_b / trials_b) / math.sqrt(variance)
    return math.erfc(abs(z) / math.sqrt(2))


# -- the report --------------------------------------------------------------------------


def variant_rows(since=None, *, until=None, recovery_days=RECOVERY_DAYS, using=None):
    """The aggregate query of :func:`variant_report`: (policy key, step key, variant,
    sent, recovered) per group."""
    recovered = Q(
        case__status=Case.Status.RESOLVED,
        case__closed_on__gte=F("executed_on"),
        case__closed_on__lte=F("executed_on") + datetime.timedelta(days=recovery_days),
    )
    steps = CaseStep.objects.filter(status=CaseStep.Status.SENT).exclude(
        step_key=PAYMENT_RECEIVED)
    if using:
        steps = steps.using(using)
    if since is not None:
        steps = steps.filter(executed_on__gte=since)
    if until is not None:
        steps = steps.filter(executed_on__lte=until)
    return list(
        steps.order_by()
        .values("case__policy__key", "step_key", "variant")
        .annotate(sent=Count("pk"), recovered=Count("pk", filter=recovered))
        .values_list("case__policy__key", "step_key", "variant", "sent", "recovered")
    )


def variant_report(since=None, *, until=None, recovery_days=RECOVERY_DAYS, using=None):
    """How each A/B variant of a step did (ONE aggregate query, grouped by policy, step
    and variant in the database).

    Counts the messages sent (``CaseStep`` status sent; not the thank-you message)
    executed on ``since`` or later (and on ``until`` or earlier), of the steps that have
    at least one variant other than the control among them. A message recovered its case
    when the case was resolved (status resolved: paid, not terminated or written off) at
    most ``recovery_days`` days after the step was executed.

    Returns one dict per policy, step and variant, ordered by policy key, step key and
    variant (the control first)::

        {"policy": str, "step_key": str, "variant": str, "control": bool,
         "sent": int, "recovered": int, "rate": float | None,
         "low": float | None, "high": float | None,      # 95 % Wilson score interval
         "p_value": float | None}                          # vs the control; None for it

    The control of a step is its variant ``""``, or when it sent none, its first
    variant by name. Rates, bounds and p-values are unrounded floats (0 to 1).
    """
    groups = defaultdict(list)
    for policy, step_key, variant, sent, recovered in variant_rows(
            since, until=until, recovery_days=recovery_days, using=using):
        groups[(policy, step_key)].append((variant, sent, recovered))
    report = []
    # Sorted here, not by the database: its collation may order variant names otherwise.
    for (policy, step_key), arms in sorted(groups.items()):
        if all(variant == CONTROL for variant, _sent, _recovered in arms):
            continue  # no A/B test on this step
        arms.sort()
        control = arms[0]  # "" sorts first
        for variant, sent, recovered in arms:
            interval = wilson_interval(recovered, sent)
            is_control = variant == control[0]
            report.append({
                "policy": policy,
                "step_key": step_key,
                "variant": variant,
                "control": is_control,
                "sent": sent,
                "recovered": recovered,
                "rate": recovered / sent if sent else None,
                "low": interval[0] if interval else None,
                "high": interval[1] if interval else None,
                "p_value": None if is_control else two_proportion_p_value(
                    recovered, sent, control[2], control[1]),
            })
    return report
