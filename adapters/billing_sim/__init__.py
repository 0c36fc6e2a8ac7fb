"""The billing simulator: a seeded, in-memory stand-in for the operator's billing system."""
