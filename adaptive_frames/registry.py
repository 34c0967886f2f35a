"""Re-export of the project-wide registry (meter.registry)."""

from meter.registry import Registry

__all__ = ["Registry"]
