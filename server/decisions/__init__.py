"""The decision API's core: an authorization in, routing and retry advice out, through the
scoring core's batchers and the payments domain, knowing nothing of gRPC."""
