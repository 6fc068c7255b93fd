"""What runs the sources: the collector (one snapshot), the dashboard's poll source, the budget
and usage providers, and the publisher that pushes this host to the gateway."""
