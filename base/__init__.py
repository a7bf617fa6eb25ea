"""The shared ground: value types and rules every floor above uses (errors, the
Mount value type, identifiers, the clock). It imports nothing of the project."""
