"""`flor ui`: a local web UI over the project's store (runs, a run's curves and code,
compare, versions, parameters vs metrics, hindsight, read-only SQL).

`flor.ui.api` holds the JSON API as plain functions; `flor.ui.server` serves it with the
page and scripts in `static/`, which ship inside the package (no network needed).
"""
