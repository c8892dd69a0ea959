"""``python -m edge`` is ``pickedge``."""

from edge.cli import main

if __name__ == "__main__":
    main()
