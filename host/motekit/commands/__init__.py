"""Click commands, one module per concern; motekit.cli wires them into `mote`."""
