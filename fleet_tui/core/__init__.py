"""Pure core: join, health, sanitize. Time is a parameter; no I/O, no clock, no disk."""
