"""transport of the device layer."""
