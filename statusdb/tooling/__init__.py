"""statusdb's own tooling, apart from the repository: the `statusdb` command line (`cli`), the
demo story (`demo`) and the local development cluster they start (`localpg`).

Backend services import the repository modules (`statusdb.pages`, `statusdb.incidents`, ...)
and `statusdb.infra.migrations` (apply the migrations at deploy time); nothing here is needed
for that.
"""
