"""gRPC servicers: validate at the boundary, call the rules, shape the answer. Nothing else."""
