"""The collector, poll scheduling, budget and usage providers, and the publisher."""
