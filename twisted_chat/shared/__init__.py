"""What the server and the client share: the rules of names and text, the
line protocol's commands and lines, and socket options."""
