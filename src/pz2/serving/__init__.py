"""pz2 over HTTP: the OpenAI-compatible API, Prometheus metrics and the web chat (`pz2 serve`).

`protocol` holds the wire models, `service` does the work (admission, the assistant in a worker
thread, responses and server-sent events), `app` holds the FastAPI routes, `metrics` the
Prometheus series, `scheduler` the fair queue.
"""
