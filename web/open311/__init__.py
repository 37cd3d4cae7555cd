"""Open311 GeoReport v2: routes (routes.py) and the XML and JSON of each answer (formats.py)."""
