"""Guidance, conditioning assembly and sampling loops."""
