"""The gRPC API of the daemon: the service, its server, and the conversions to messages;
who may call what (`auth`), what makes a request malformed (`requests`), and the client side
the box's own tools use (`client`)."""
