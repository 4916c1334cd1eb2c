"""The ekws service: REST API, store, rules and metrics over the SDK."""
