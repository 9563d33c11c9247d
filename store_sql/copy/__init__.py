"""Copying a whole store into another, on either backend (`store-sql copy`)."""
