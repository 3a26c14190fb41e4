"""The RPC runtime of the authenticated services: Connect, gRPC and gRPC-Web on one port.

``runtime`` (the ASGI app inside Envoy: start-up, health, drain, shutdown),
``launcher`` (the process that starts Envoy with pyvoy and stops it gracefully),
``asgi`` (CORS, content-type check, drain gate), ``codecs``, ``status`` and
``interceptors`` (the catalog on every protocol), ``health`` and ``tracing``.
Decisions and measurements: docs/protocols.md.
"""
