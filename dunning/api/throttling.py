"""Throttling of the write endpoints, by DRF's standard scopes.

Scopes: ``dunning_write`` (case actions, policy/step/template writes) and
``dunning_ingest`` (invoices in, payment events). The rate of a scope is
``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][scope]`` when the site sets it, else
``DUNNING["API_THROTTLE_RATES"][scope]``; None means no limit. Reads are never throttled.
Counts are kept per user in Django's default cache.
"""

from rest_framework.throttling import ScopedRateThrottle

from ..conf import dunning_settings


class DunningScopedRateThrottle(ScopedRateThrottle):
    def get_rate(self):
        rates = self.THROTTLE_RATES or {}
        if self.scope in rates:
            return rates[self.scope]
        return (dunning_settings.API_THROTTLE_RATES or {}).get(self.scope)

    def allow_request(self, request, view):
        self.scope = getattr(view, self.scope_attr, None)
        if not self.scope:
            return True
        # DRF reads the rate once per instance; read it per request (settings may change).
        self.THROTTLE_RATES = self._site_rates()
        self.rate = self.get_rate()
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super(ScopedRateThrottle, self).allow_request(request, view)

    @staticmethod
    def _site_rates():
        from rest_framework.settings import api_settings

        return api_settings.DEFAULT_THROTTLE_RATES
