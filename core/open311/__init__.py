"""Open311 GeoReport v2: keys, the status table, what may be published, intake (docs/open311.md)."""
