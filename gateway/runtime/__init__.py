"""Running the service: settings, the composition root, embedded processes, the supervisor,
logs and metrics."""
