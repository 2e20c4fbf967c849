"""The server: its front ends, its limits and the wiring for C{twistd chat}."""
