"""``python -m tracker_links``: the command-line tool (the same as ``tracker-links``)."""

from ._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
