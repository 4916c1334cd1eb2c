"""The service's REST API: the WSGI plumbing, the views, and where domain errors become HTTP answers."""
