"""The chat app: rooms over the channel layer, and messages stored with the ORM."""
