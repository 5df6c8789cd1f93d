"""Public renderings of a page: Statuspage v2 JSON (statuspage), feeds."""
