"""The only code that writes to panes: send, attach, watch, pipes; operator actions and their audit log."""
