"""Read-only sources of fleet data: tmux, roster, heartbeat spool, systemd, processes."""
