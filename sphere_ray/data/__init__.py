"""Data bundled with the package (see ATTRIBUTION.md)."""
