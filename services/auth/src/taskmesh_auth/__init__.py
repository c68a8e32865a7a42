"""taskmesh auth service: identity: credentials, sessions, tokens, signing keys."""
