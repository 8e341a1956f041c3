"""Pure rules, no I/O: what to fetch, when a bucket is final, which clock to believe."""
