"""The shipped default policy ``standard`` and its message texts.

Email texts are ``<language>/<key>.txt`` (first line "Subject: ...") and ``.html``; the
texts of the other channels are ``<language>/<channel>/<key>.txt`` (text messages, in-app
notices, letters) and ``.html`` (letters: the body WeasyPrint prints). Used by the data
migrations that install the policy and its texts (0002, 0008, 0018) and by "reset to the
shipped text" in the admin.
"""

from importlib import resources

STANDARD_POLICY = {
    "key": "standard",
    "name": "Standard",
    "description": "From a gentle reminder to termination over 45 days.",
    "min_gap_days": 3,
    "steps": [
        # key, offset in days past due, action
        ("initial-notice", 1, ""),
        ("gentle-reminder", 4, ""),
        ("formal-notice", 8, ""),
        ("suspension-warning", 14, ""),
        ("suspension", 21, "suspend"),
        ("final-notice", 30, ""),
        ("termination", 45, "terminate"),
    ],
}

MESSAGE_KEYS = [key for key, _, _ in STANDARD_POLICY["steps"]] + ["payment-received"]
# Sent before anything is overdue (dunning.payments.predunning), from the default policy.
PREDUNNING_KEYS = [
    "card-expiring-30", "card-expiring-7", "renewal-card-expiring", "account-updater-consent",
]
# Sent by the payment retries (dunning.payments.retries), from the default policy: the
# bank asks the customer to authenticate a payment (migration 0020).
PAYMENT_KEYS = ["payment-authentication"]
LANGUAGES = ("en", "de")
#: The channels with shipped texts of their own for the policy's steps and the thank-you
#: message (dunning/shipped/<language>/<channel>/<key>.txt, and .html for letters); the
#: email's are in dunning/shipped/<language>/<key>.txt and .html.
EMAIL = "email"
CHANNEL_TEXTS = ("sms", "letter", "in_app")


def shipped_message(language, key, channel=EMAIL):
    """(subject, text body, HTML body) of a shipped message of ``channel``, or None.

    The text file's first line is the subject ("Subject: ..."); the HTML body is "" when
    the message has none (text messages and in-app notices)."""
    if not language or not key or not channel or any(
            "/" in part or "\\" in part or part.startswith(".")
            for part in (language, key, channel)):
        return None
    folder = resources.files(__name__) / language
    if channel != EMAIL:
        folder = folder / channel
    text_file = folder / f"{key}.txt"
    if not text_file.is_file():
        return None
    first, _, body = text_file.read_text(encoding="utf-8").partition("\n")
    subject = first.removeprefix("Subject:").strip()
    html_file = folder / f"{key}.html"
    html = html_file.read_text(encoding="utf-8") if html_file.is_file() else ""
    return subject, body.lstrip("\n"), html


def shipped_messages(keys=None, channel=EMAIL):
    """Every shipped message of ``keys`` (default: the policy's steps and the thank-you
    message) on ``channel``: (language, key, subject, text, html)."""
    for language in LANGUAGES:
        for key in MESSAGE_KEYS if keys is None else keys:
            message = shipped_message(language, key, channel)
            if message:
                yield (language, key, *message)
