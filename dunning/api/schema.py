"""drf-spectacular hooks of the API's schema."""


def only_dunning_endpoints(endpoints, **kwargs):
    """Keep the endpoints of dunning.api (not the site's other DRF views, nor the schema
    and docs views themselves)."""
    from .views import DocsView, SchemaView

    kept = []
    for path, path_regex, method, callback in endpoints:
        cls = getattr(callback, "cls", None)
        if cls is None or cls in (SchemaView, DocsView):
            continue
        if cls.__module__.startswith("dunning.api."):
            kept.append((path, path_regex, method, callback))
    return kept
