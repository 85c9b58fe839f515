"""Networks and feature extractors that ComfyUI core lacks."""
