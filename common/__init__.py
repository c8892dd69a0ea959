"""What every layer may use and nothing else: the error root, back-off, crash points.

``devices/``, ``edge/`` and ``cloud_sync/`` import from here; this package
imports nothing of the project (``tests/foundation/test_layers.py``), so a cloud
running ``cloud_sync`` loads no box code through it.
"""
