"""hallgate: the gRPC gateway between a mobile operator's retail halls and its billing system."""
