"""Deliverers for `statusdb worker --deliver`: `console` (one line per delivery, for the demo)
and `webhook` (the reference HTTPS webhook client, extra `webhook`). See docs/worker.md for the
contract a deliverer of your own keeps."""
