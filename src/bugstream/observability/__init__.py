"""Metrics, structured logs and the periodic performance summary.

The gateway and the relay count in plain attributes and call a `Telemetry` object; this
package turns that into Prometheus metrics (`/metrics`) and JSON logs, so the hot path never
touches a metrics library.
"""
