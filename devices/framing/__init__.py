"""framing of the device layer."""
