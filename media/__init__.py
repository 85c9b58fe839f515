"""Audio, video and face processing (no torchaudio)."""
