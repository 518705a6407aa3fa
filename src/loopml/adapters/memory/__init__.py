"""In-memory fakes of the ports, for fast unit tests of services."""
