"""The chat itself: users, rooms and delivery, in plain Python (no sockets)."""
