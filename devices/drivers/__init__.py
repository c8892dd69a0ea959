"""drivers of the device layer."""
