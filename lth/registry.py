"""Kept only as a re-export for modules outside lth/ that still import it (experiments/*); lth itself imports
`meter.registry.Registry`. Remove once those importers are updated."""

from meter.registry import Registry  # noqa: F401
