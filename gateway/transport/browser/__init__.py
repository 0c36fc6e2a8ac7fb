"""The browser listener: HTTPS for browsers and HTTP clients (docs/browser.md).

listener.py terminates TLS (a hall client certificate optional) and runs hypercorn's HTTP/1.1 and
HTTP/2 per connection; site.py routes a request to the API or the self-service page's static files
and puts the security headers, CORS and the CSRF cookie on; connect.py carries the public API over
Connect, gRPC-Web and gRPC (connectrpc) into the one call pipeline (gateway/pipeline/), exactly as
gateway/transport/grpc_server.py does for gRPC; session_cookie.py keeps the kiosk path's session
token in an HttpOnly cookie. None of it decides who may do what.
"""
