"""The REST API of django-dunning (Django REST framework): see docs/api.md.

Include ``dunning.urls`` in the site's URLconf (e.g. at ``dunning/``); the API lives under
``api/v1/`` there, with its OpenAPI 3 schema at ``api/v1/schema/`` and the browsable docs
at ``api/v1/docs/``.
"""
