"""In-app notices (docs/inapp.md), the customer's side: ``views`` (who the customer of a
request is, the dismiss view) and ``receivers`` (notices resolve with their case, wired in
``apps.ready()``). The table is ``dunning.models.Notice``; the channel that writes notices
is ``dunning.channels.inapp``; the staff and API sides live in ``dunning.admin.notices``
and ``dunning.api.notices``; the template tags in ``dunning.templatetags.dunning_notices``."""
