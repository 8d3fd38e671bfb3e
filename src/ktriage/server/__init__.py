"""The fleet's HTTP side: the `/api/v1` JSON API and the dashboard pages, both reading `ktriage.fleet.FleetStore`.

Installed with the `fleet` extra (FastAPI, uvicorn, Jinja2); nothing below the fleet imports this package.
`ktriage fleet serve` starts it through `ktriage.server.app.run`.
"""
