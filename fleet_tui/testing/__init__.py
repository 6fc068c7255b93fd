"""Deterministic fleets and budgets and a throwaway PostgreSQL, for tests, screenshots and benchmarks (not product code)."""
