"""Local HTTP servers that stand in for third-party services in tests (DESIGN.md)."""
