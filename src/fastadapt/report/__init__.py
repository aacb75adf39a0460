"""Figures and markdown reports of runs."""
