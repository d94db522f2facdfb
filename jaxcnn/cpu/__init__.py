"""CPU acceleration that a user turns on explicitly (nothing here runs at import)."""
