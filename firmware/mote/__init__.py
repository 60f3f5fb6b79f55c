# motekit firmware package (imported on the device as `mote`).
VERSION = "0.1.0"
