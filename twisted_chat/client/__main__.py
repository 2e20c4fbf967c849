"""C{python -m twisted_chat.client}: run the command-line client."""

from twisted_chat.client.app import main

main()
