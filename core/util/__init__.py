"""Small tools every layer may use: atomic writes, file locks, user folders, PNG, cancellation."""
