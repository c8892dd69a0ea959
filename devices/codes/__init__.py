"""codes of the device layer."""
