"""The optional HTTP app (the `http` extra): `statusdb.http.app.create_app`."""
