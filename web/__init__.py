"""The web process: Open311 GeoReport v2 at /open311/v2 (web/open311/), on Sanic.

`web.app.create_app` builds it; each area is a blueprint in its own package. It imports core,
never bot or actions; core never imports it.
"""
