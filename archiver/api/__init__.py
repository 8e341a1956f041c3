"""The vendor's Analytics API: one HTTP client, its transport and errors, response parsers."""
