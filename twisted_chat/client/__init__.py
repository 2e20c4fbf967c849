"""The command-line client, C{python -m twisted_chat.client}."""
