"""The operations layer: what any client may ask, checked once (DESIGN.md)."""
