"""`make bench`: the gateway's throughput, latency and memory, side by side with what a bare Python hop can do."""
