"""An SMS backend on Twilio's Messages API, through the official ``twilio`` library.

Install the extra: ``pip install django-dunning[twilio]``. Settings::

    DUNNING = {
        "SMS_BACKEND": "dunning.channels.sms_backends.twilio.SmsBackend",
        "SMS_FROM": "+4915712345678",   # a Twilio number or an alphanumeric sender id
        "SMS_BACKEND_OPTIONS": {
            "account_sid": "AC...",      # or env TWILIO_ACCOUNT_SID
            "auth_token": "...",         # or env TWILIO_AUTH_TOKEN
            # "messaging_service_sid": "MG...",  # send through a Messaging Service
            # "status_callback": "https://shop.example/twilio/status/",
            # "timeout": 15,             # seconds per request
        },
    }

Each message is one ``POST /2010-04-01/Accounts/{sid}/Messages.json``; the result's
``message_id`` is the message's sid (``SM...``). Twilio's answers map to outcomes:

- 201: sent (a message Twilio created as ``failed`` at once is a permanent failure);
- 429, 5xx, no answer (timeout, refused connection), 401/403 (credentials: a person
  fixes them, the message should go out then) and codes 20429, 14107 and 21611 (rate
  and queue limits): transient, the outbox tries again later;
- any other 4xx: permanent, e.g. 21211 (invalid 'To' number), 21610 (the recipient
  replied STOP), 21614 (not a mobile number), 21408 (region not enabled).

The library does not retry by itself (``TwilioHttpClient`` without ``max_retries``):
retrying is the outbox's job.
"""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from ...conf import dunning_settings
from .base import BaseSmsBackend, SmsResult

#: Twilio error codes worth trying again later even though they come with a 4xx.
TRANSIENT_CODES = frozenset({
    14107,  # SMS send rate limit exceeded
    20429,  # too many requests
    21611,  # the 'From' number has too many messages queued
})
#: Status of a message Twilio created but will not deliver.
FAILED_STATUSES = frozenset({"failed", "undelivered", "canceled"})


class SmsBackend(BaseSmsBackend):
    #: 21610: the recipient replied STOP ("Attempt to send to unsubscribed recipient").
    opt_out_codes = frozenset({"21610"})

    def __init__(self, *, account_sid=None, auth_token=None, sender=None,
                 messaging_service_sid=None, status_callback=None, timeout=15,
                 http_client=None, client=None, **options):
        super().__init__(**options)
        self.sender = sender or dunning_settings.SMS_FROM or ""
        self.messaging_service_sid = messaging_service_sid or ""
        self.status_callback = status_callback or ""
        if client is None:
            account_sid = account_sid or os.environ.get("TWILIO_ACCOUNT_SID", "")
            auth_token = auth_token or os.environ.get("TWILIO_AUTH_TOKEN", "")
            if not (account_sid and auth_token):
                raise ImproperlyConfigured(
                    "The Twilio SMS backend needs an account SID and an auth token: "
                    "DUNNING['SMS_BACKEND_OPTIONS'] 'account_sid' and 'auth_token', or the "
                    "environment variables TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN."
                )
            client = Client(account_sid, auth_token,
                            http_client=http_client or TwilioHttpClient(timeout=timeout))
        if not (self.sender or self.messaging_service_sid):
            raise ImproperlyConfigured(
                "The Twilio SMS backend needs a sender: set DUNNING['SMS_FROM'] or the "
                "option 'messaging_service_sid'."
            )
        self.client = client

    def params(self, message):
        params = {"to": message.to, "body": message.body}
        sender = message.sender or self.sender
        if self.messaging_service_sid:
            params["messaging_service_sid"] = self.messaging_service_sid
        if sender:
            params["from_"] = sender
        if self.status_callback:
            params["status_callback"] = self.status_callback
        return params

    def send_message(self, message):
        created = self.client.messages.create(**self.params(message))
        sid = str(created.sid or "")
        if created.status in FAILED_STATUSES:
            code = created.error_code or ""
            return SmsResult(False, message_id=sid, code=str(code),
                             reason=f"Twilio error {code}: {created.error_message or created.status}")
        return SmsResult(True, message_id=sid)

    def failure(self, exc):
        if isinstance(exc, TwilioRestException | TwilioServiceException):
            code = exc.code or ""
            text = exc.msg if isinstance(exc, TwilioRestException) else (exc.detail or exc.title)
            return SmsResult(False, code=str(code), transient=self.is_transient(exc),
                             reason=f"Twilio error {code} (HTTP {exc.status}): {text}"[:2000])
        return super().failure(exc)

    def is_transient(self, exc):
        if isinstance(exc, TwilioRestException | TwilioServiceException):
            if exc.code in TRANSIENT_CODES:
                return True
            status = int(exc.status or 0)
            return status == 429 or status >= 500 or status in (401, 403) or status == 0
        if isinstance(exc, TwilioException):
            return True  # the library's own configuration problems
        return super().is_transient(exc)
