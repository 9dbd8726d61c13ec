"""The shipped default policy ``standard`` and its message texts.

Used by the data migration that installs the policy and by "reset to the shipped text".
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
LANGUAGES = ("en", "de")


def shipped_message(language, key):
    """(subject, text body, HTML body) of a shipped message, or None."""
    folder = resources.files(__name__) / language
    text_file = folder / f"{key}.txt"
    if not text_file.is_file():
        return None
    first, _, body = text_file.read_text(encoding="utf-8").partition("\n")
    subject = first.removeprefix("Subject:").strip()
    html_file = folder / f"{key}.html"
    html = html_file.read_text(encoding="utf-8") if html_file.is_file() else ""
    return subject, body.lstrip("\n"), html


def shipped_messages(keys=None):
    """Every shipped message of ``keys`` (default: the policy's steps and the thank-you
    message): (language, key, subject, text, html)."""
    for language in LANGUAGES:
        for key in MESSAGE_KEYS if keys is None else keys:
            message = shipped_message(language, key)
            if message:
                yield (language, key, *message)
