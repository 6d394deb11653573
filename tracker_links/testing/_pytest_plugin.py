"""pytest fixtures for users of tracker-links (filled in by the fake Tracker work)."""
