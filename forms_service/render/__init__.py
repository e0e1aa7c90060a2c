"""Rendering of the official forms: DOCX templates to print-ready PDF."""
