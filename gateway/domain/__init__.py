"""The hall's rules and the use cases over the ports: no gRPC, no Redis, no transport."""
