"""One call pipeline for every transport: what surrounds a call, decided in one place.

A transport (gateway/transport/grpc.py today, Connect next) turns its call into CallFacts and a
handler, and hands both to `Pipeline.unary` or `Pipeline.stream`. The pipeline identifies the
caller, enforces the policy table, keeps the audit trail (one event, or an opening and a closing
one for a stream), starts side effects once on record, holds answers to their floor, maps domain
errors to canonical codes with google.rpc details, and counts. The transport only carries bytes
and turns an Outcome into its own status: it takes no decision of its own.
"""
