"""The gRPC API of the daemon: the service, its server, and the conversions to messages."""
