"""Backends of the SMS channel (dunning.channels.sms): where text messages go.

Named by ``DUNNING["SMS_BACKEND"]`` (a dotted path) and built with
``DUNNING["SMS_BACKEND_OPTIONS"]`` as keyword arguments:

- ``console.SmsBackend``: prints each message (development; the default);
- ``filebased.SmsBackend``: one file per batch in ``DUNNING["SMS_FILE_PATH"]``;
- ``locmem.SmsBackend``: keeps the messages in ``locmem.outbox`` (tests);
- ``twilio.SmsBackend``: Twilio's Messages API, on the official ``twilio`` library.

Write your own by subclassing :class:`~.base.BaseSmsBackend`; see docs/channels.md.
"""
