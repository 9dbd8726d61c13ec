"""Normalized decline codes and their classification.

Every backend reports a decline with one of the codes below. A *soft* decline (the card
is fine, the moment was not) is retried on the schedule; a *hard* decline (the method is
unusable) is never retried with that method: another stored method is tried, and the
customer is asked to update the method. A code that is not in the table (a processor's
new code, a generic decline) is treated as soft, but the per-method cap still bounds it.
"""

from django.utils.translation import gettext_lazy as _

SOFT = "soft"
HARD = "hard"
#: The customer must act (authenticate the payment, 3-D Secure / SCA): never retried
#: off-session; the customer is asked to pay through the self-service page.
ACTION = "action"

# normalized code -> (class, label)
INSUFFICIENT_FUNDS = "insufficient_funds"
DO_NOT_HONOR = "do_not_honor"
TRY_AGAIN_LATER = "try_again_later"
PROCESSING_ERROR = "processing_error"
GENERIC = "generic_decline"
EXPIRED = "expired"
LOST_OR_STOLEN = "lost_or_stolen"
INVALID_ACCOUNT = "invalid_account"
FRAUD = "fraud"
AUTHENTICATION_REQUIRED = "authentication_required"

CODES = {
    INSUFFICIENT_FUNDS: (SOFT, _("Insufficient funds")),
    DO_NOT_HONOR: (SOFT, _("Do not honor")),
    TRY_AGAIN_LATER: (SOFT, _("Try again later")),
    PROCESSING_ERROR: (SOFT, _("Processing error")),
    GENERIC: (SOFT, _("Declined without a reason")),
    EXPIRED: (HARD, _("Expired")),
    LOST_OR_STOLEN: (HARD, _("Lost or stolen")),
    INVALID_ACCOUNT: (HARD, _("Invalid account")),
    FRAUD: (HARD, _("Suspected fraud")),
    AUTHENTICATION_REQUIRED: (ACTION, _("The customer must authenticate the payment")),
}

#: Stripe's ``decline_code`` (or, without one, the error's ``code``) -> normalized code.
STRIPE_CODES = {
    "insufficient_funds": INSUFFICIENT_FUNDS,
    "withdrawal_count_limit_exceeded": INSUFFICIENT_FUNDS,
    "card_velocity_exceeded": INSUFFICIENT_FUNDS,
    "do_not_honor": DO_NOT_HONOR,
    "try_again_later": TRY_AGAIN_LATER,
    "issuer_not_available": TRY_AGAIN_LATER,
    "reenter_transaction": TRY_AGAIN_LATER,
    "approve_with_id": TRY_AGAIN_LATER,
    "processing_error": PROCESSING_ERROR,
    "generic_decline": GENERIC,
    "card_declined": GENERIC,
    "expired_card": EXPIRED,
    "lost_card": LOST_OR_STOLEN,
    "stolen_card": LOST_OR_STOLEN,
    "pickup_card": LOST_OR_STOLEN,
    "restricted_card": LOST_OR_STOLEN,
    "invalid_account": INVALID_ACCOUNT,
    "incorrect_number": INVALID_ACCOUNT,
    "invalid_number": INVALID_ACCOUNT,
    "account_closed": INVALID_ACCOUNT,
    "no_account": INVALID_ACCOUNT,
    "new_account_information_available": INVALID_ACCOUNT,
    "fraudulent": FRAUD,
    "merchant_blacklist": FRAUD,
    "security_violation": FRAUD,
    "authentication_required": AUTHENTICATION_REQUIRED,
    # A PaymentIntent left in "requires_action" by an off-session confirmation.
    "requires_action": AUTHENTICATION_REQUIRED,
}


def classify(code):
    """SOFT or HARD for a normalized code; unknown codes are SOFT."""
    return CODES.get(code, (SOFT, None))[0]


def is_hard(code):
    return classify(code) == HARD


def needs_customer(code):
    """True when only the customer can complete the payment (not retried off-session)."""
    return classify(code) == ACTION


def label(code):
    entry = CODES.get(code)
    return entry[1] if entry else code


def from_stripe(decline_code, code=""):
    """The normalized code for Stripe's ``decline_code`` / ``code`` (unknown: generic)."""
    return STRIPE_CODES.get(decline_code or "") or STRIPE_CODES.get(code or "") or GENERIC
