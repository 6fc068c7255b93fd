"""The demo fleet on a private socket, and the stub agent that runs in its panes."""
