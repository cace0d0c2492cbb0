"""`chat`: a terminal client for chat.ChatService (operators, demos, scripts)."""
