"""What several test modules need: config folders, waits, peers, certificates, the service."""
