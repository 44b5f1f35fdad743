"""`forestgate load`: a ghz-compatible gRPC load generator (flags, templating, report formats).

The pipeline of one run: options (flags and --config) -> schema (the method's descriptors from
--proto, --protoset or server reflection) -> data (pre-serialized or templated requests) ->
schedule (rate and worker schedules) -> runner (asyncio workers on grpc.aio channels, in one or
several processes) -> report (ghz's statistics) -> printers (summary, json, pretty, csv, html).
"""

from forestgate.errors import UserError


class LoadError(UserError):
    """Bad input to a load run, reported on one line before any load is sent."""
