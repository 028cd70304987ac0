"""Drawings in: every Quick, Draw! format, rasterising strokes, pictures, downloads, several files."""
