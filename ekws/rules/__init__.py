"""The rule engine: eKuiper's streaming SQL over a stream's records, usable without the service."""
