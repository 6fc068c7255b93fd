"""The command line: the composition root and one module per verb group."""
