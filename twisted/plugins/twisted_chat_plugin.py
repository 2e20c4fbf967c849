"""
The twistd plugin for C{twistd chat}.  The module is named as a string, so a
broken import shows up as an error when the command runs instead of hiding
the command.
"""

from twisted.application.service import ServiceMaker

chat = ServiceMaker(
    "twisted-chat",
    "twisted_chat.server.tap",
    "A group-chat server for nc, telnet and the twisted-chat client.",
    "chat",
)
