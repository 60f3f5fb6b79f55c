"""Energy simulator: the firmware's battery-aware policy over a labelled accelerometer trace (`mote power`)."""
