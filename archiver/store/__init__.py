"""Persistence: the archive's tables, the bulk upsert path and the sync state."""
