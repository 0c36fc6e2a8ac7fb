"""Transports: how calls reach the one call pipeline (gateway/pipeline/). gRPC today."""
