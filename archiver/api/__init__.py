"""The vendor's Analytics API: endpoint declarations, response parsers and one HTTP client."""
