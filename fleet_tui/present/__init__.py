"""How records are shown: the column model and formatting shared by `ps` and the dashboard."""
