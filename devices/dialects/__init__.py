"""dialects of the device layer."""
