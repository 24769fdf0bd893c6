"""Asset definitions, thin: each says what it is and calls the logic that lives in seller/, pricing/ and feeds/."""
