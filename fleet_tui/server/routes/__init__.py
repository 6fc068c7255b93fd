"""The gateway's routes, one APIRouter per area (DESIGN.md "Gateway API, version 1"): `health`,
`snapshot` (hosts' ps documents), `heartbeats`, `budgets` (usage samples, spend records and the
tenant's policy). `fleet_tui.server.app.create_app` includes them all."""
